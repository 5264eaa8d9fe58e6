import pytest

from llm.base import declined, refusal
from synth.prompt_types import (
    PARSERS,
    ParseError,
    PromptType,
    RegistryError,
    check_expectations,
    load_registry,
    parse_question_only,
)
from tests.conftest import ROOT

WINDOW = {"article": "Battle of Midway", "section": "Background", "text": "The U.S. Navy sank four carriers."}


def test_shipped_registry_has_the_required_types_and_every_prompt_renders():
    types = load_registry(ROOT / "data/prompt_types.yaml")
    names = {t.name for t in types}
    assert len(types) >= 30
    for required in (
        "who",
        "what",
        "when",
        "where",
        "why",
        "how_many",
        "true_statement",
        "false_statement",
        "wrong_person",
        "fill_blank",
        "multiple_choice",
        "contrast_person",
        "contrast_number",
        "academic_rephrase",
        "journalistic_rephrase",
        "chronological_restructure",
        "summary",
        "cause_effect",
        "compare_two",
        "definition",
        "explain_to_student",
    ):
        assert required in names
    for ptype in types:
        assert WINDOW["text"] in ptype.render(ptype.prompt, WINDOW)
        if ptype.format == "qa":
            assert ptype.chain_question and "{question}" in ptype.chain_answer


@pytest.mark.parametrize(
    "fmt, reply, question, answer",
    [
        (
            "qa",
            "Question: Who led the 6th Army?\nAnswer: Friedrich Paulus.",
            "Who led the 6th Army?",
            "Friedrich Paulus.",
        ),
        (
            "qa",
            "**Question:** When did Midway start?\n**Answer:** On 4 June 1942.",
            "When did Midway start?",
            "On 4 June 1942.",
        ),
        (
            "true_false",
            "Statement: Midway was fought in 1943.\nAnswer: False\nExplanation: It was fought in June 1942.",
            "True or false: Midway was fought in 1943.",
            "False. It was fought in June 1942.",
        ),
        (
            "fill_blank",
            "Sentence: ____ commanded the 6th Army.\nAnswer: Friedrich Paulus",
            "Fill in the blank: ____ commanded the 6th Army.",
            "Friedrich Paulus",
        ),
        (
            "multiple_choice",
            "Question: Who led the U.S. fleet?\nA) Yamamoto\nB) Nimitz\nC) Nagumo\nD) Halsey\nAnswer: B",
            "Who led the U.S. fleet?\nA) Yamamoto\nB) Nimitz\nC) Nagumo\nD) Halsey",
            "B) Nimitz",
        ),
        (
            "contrastive",
            "Question: How many carriers did Japan lose at Midway, four or six?\nOption A: four\nOption B: six\n"
            "Answer: four\nExplanation: Akagi, Kaga, Soryu and Hiryu were sunk.\nFeature: number",
            "How many carriers did Japan lose at Midway, four or six?",
            "Four. Akagi, Kaga, Soryu and Hiryu were sunk.",
        ),
    ],
)
def test_parsers_read_their_format(fmt, reply, question, answer):
    parsed = PARSERS[fmt](reply)
    assert (parsed.question, parsed.answer) == (question, answer)


@pytest.mark.parametrize(
    "fmt, reply, reason",
    [
        ("qa", "Sure! Here is a question about Midway.", "missing_question"),
        ("qa", "Question: Who?\nAnswer:", "empty_answer"),
        ("true_false", "Statement: X.\nAnswer: Maybe", "bad_label"),
        ("fill_blank", "Sentence: Paulus led the army.\nAnswer: Paulus", "missing_blank"),
        ("multiple_choice", "Question: Who?\nA) X\nB) Y\nAnswer: A", "too_few_options"),
        ("multiple_choice", "Question: Who?\nA) X\nB) Y\nC) Z\nAnswer: E", "bad_answer_letter"),
        (
            "contrastive",
            "Question: Who led, Paulus or Rommel?\nOption A: Paulus\nOption B: Manstein\nAnswer: Paulus",
            "options_not_in_question",
        ),
        (
            "contrastive",
            "Question: Paulus led it; was it Rommel?\nOption A: Paulus\nOption B: Rommel\nAnswer: Paulus",
            "no_choice_span",
        ),
        (
            "contrastive",
            "Question: Who led, Paulus or Rommel?\nOption A: Paulus\nOption B: Rommel\nAnswer: Zhukov",
            "answer_not_an_option",
        ),
    ],
)
def test_parsers_name_what_is_wrong(fmt, reply, reason):
    with pytest.raises(ParseError) as err:
        PARSERS[fmt](reply)
    assert err.value.reason == reason


def test_contrastive_meta_and_answer_by_letter():
    parsed = PARSERS["contrastive"](
        "Question: Who led the 6th Army, Rommel or Paulus?\nOption A: Rommel\n"
        "Option B: Paulus\nAnswer: B\nFeature: person"
    )
    assert parsed.meta == {"options": ["Rommel", "Paulus"], "correct": 1, "feature": "person"}


def test_none_is_a_decline_and_labels_are_checked():
    assert declined("NONE") and declined(" none. ") and not declined("None of the carriers survived.")
    assert refusal("As an AI language model, I cannot say.") and refusal("I'm sorry, but I can't help with that.")
    assert not refusal("Paulus could not break out and surrendered.")
    ptype = PromptType("true_statement", "true_false", "qa", "true_false", "p {text}", expect_label=True)
    parsed = PARSERS["true_false"]("Statement: Midway was in 1943.\nAnswer: False")
    with pytest.raises(ParseError, match="wrong_label"):
        check_expectations(ptype, parsed)


def test_question_only_skips_a_preamble():
    assert parse_question_only("Here is a question:\nWho sank Akagi?") == "Who sank Akagi?"


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("types: []", "expected a top-level 'types:' list"),
        (
            "types:\n  - name: a\n    family: f\n    kind: qa\n    format: haiku\n    prompt: x",
            "unknown format 'haiku'",
        ),
        (
            "types:\n  - name: a\n    family: f\n    kind: qa\n    format: qa\n    prompt: '{txt}'",
            "unknown template field",
        ),
        (
            "types:\n  - name: a\n    family: f\n    kind: qa\n    format: qa\n    prompt: x\n  - name: a\n    family: f\n"
            "    kind: qa\n    format: qa\n    prompt: y",
            "duplicate name",
        ),
        (
            "types:\n  - name: a\n    family: f\n    kind: qa\n    format: qa\n    prompt: x\n    colour: red",
            "unknown key",
        ),
    ],
)
def test_a_bad_registry_names_the_problem(tmp_path, yaml_text, message):
    path = tmp_path / "types.yaml"
    path.write_text(yaml_text)
    with pytest.raises(RegistryError, match=message):
        load_registry(path)


@pytest.mark.parametrize("name", ["why", "which", "cause_effect", "timeline", "multiple_choice", "fill_blank"])
def test_types_that_need_a_kind_of_fact_offer_the_none_escape(name):
    ptype = next(t for t in load_registry(ROOT / "data/prompt_types.yaml") if t.name == name)
    for template in (ptype.prompt, ptype.chain_question, ptype.chain_answer):
        if template is not None:
            assert "reply with the single word NONE and nothing else" in template
