import contextlib
import re
from collections import Counter
from difflib import SequenceMatcher
from pathlib import Path

import pytest

from corpus.articles import parse_sample_article
from corpus.windows import article_sentences, window_article
from synth.prompt_types import PARSERS, Parsed, ParseError, PromptType
from synth.rules_generator import FORMATS, SUPPORTED, RulesBackend, Unsupported
from synth.rules_questions import parse_clause, wh_question

ROOT = Path(__file__).resolve().parent.parent


def ptype(name: str, fmt: str | None = None) -> PromptType:
    fmt = fmt or FORMATS.get(name, "qa")
    return PromptType(name, "test", "contrastive" if fmt == "contrastive" else "qa", fmt, "{text}")


def window(article: str, sentences: list[str]) -> dict:
    return {
        "id": f"{article}-0",
        "article": article,
        "section": "",
        "sentences": sentences,
        "text": " ".join(sentences),
    }


STALINGRAD = window("Battle of Stalingrad", [
    "Gen. Friedrich Paulus commanded the 6th Army.",
    "The 6th Army reached the Volga in August 1942.",
    "Lt. Gen. Vasily Chuikov's 62nd Army held the city.",
    "On 19 November 1942 the Red Army launched Operation Uranus.",
    "About 300,000 Axis soldiers were trapped in the pocket.",
    "Paulus surrendered in Stalingrad on 31 January 1943.",
    "The Soviets lost about 1.1 million men.",
])  # fmt: skip
MIDWAY = window("Battle of Midway", [
    "Adm. Isoroku Yamamoto, commander of the Combined Fleet, proposed seizing Midway.",
    "American dive bombers sank four Japanese fleet carriers at Midway in June 1942.",
    "Yorktown finally rolled over and sank on the morning of 7 June 1942.",
    "Adm. Chester W. Nimitz took command of the Pacific Fleet at Pearl Harbor on 31 December 1941.",
])  # fmt: skip
BRITAIN = window("Battle of Britain", [
    "Air Chief Marshal Hugh Dowding led Fighter Command.",
    "The Luftwaffe first bombed London on 7 September 1940.",
    "Reichsmarschall Hermann Göring sent three air fleets and about 1,000 bombers against Britain.",
    "Hitler postponed Operation Sea Lion on 17 September 1940.",
    "The Blitz on Coventry ended in May 1941.",
])  # fmt: skip
NORMANDY = window("Normandy landings", [
    "Gen. Dwight D. Eisenhower commanded Operation Overlord.",
    "On 6 June 1944 roughly 156,000 Allied troops landed in Normandy.",
    "The 101st Airborne Division dropped behind Utah Beach.",
    "Field Marshal Erwin Rommel commanded Army Group B.",
    "Allied troops liberated Paris on 25 August 1944.",
    "The Eighth Army had fought two years in Egypt.",
])  # fmt: skip
T34 = window("T-34", [
    "The T-34 was a Soviet medium tank with sloped armour.",
    "German officers were impressed by its armour and its wide tracks.",
    "The tank was simple to build and easy to repair in the field.",
])  # fmt: skip
WINDOWS = [STALINGRAD, MIDWAY, BRITAIN, NORMANDY, T34]


@pytest.fixture(scope="module")
def backend():
    return RulesBackend(WINDOWS, seed=7)


def in_text(option: str, text: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(option.lower())}(?!\w)", text.lower()) is not None


CONTEXT = re.compile(r"^(?:According to the (?:history|biography) of|In the (?:history|life) of) [^,]+, ")


def without_context(text: str) -> str:
    """A statement or blank without its "In the history of X, " lead, first letter restored
    the way the window writes it."""
    bare = CONTEXT.sub("", text)
    return bare[:1].upper() + bare[1:] if bare != text else text


def assert_grounded(name: str, parsed: Parsed, win: dict) -> None:
    """The answer is true according to the window text (the rules backend's promise)."""
    fmt, text = FORMATS[name], win["text"]
    if name.startswith("wrong_"):  # "It was not <wrong> but <right>. <sentence>"
        original = next(s for s in win["sentences"] if parsed.answer.endswith(" " + s))
        wrong, right = re.match(r"(?:It|The date) was not (?:the )?(.+) but (?:the )?(.+?)\. ", parsed.answer).groups()
        assert wrong in parsed.question and right in original and not in_text(wrong, text)
    elif fmt == "qa":  # the short answer (unless the sentence opens with it), then a sentence of the window
        assert any(parsed.answer == s or parsed.answer.endswith(". " + s) for s in win["sentences"])
    elif fmt == "fill_blank":
        sentence = without_context(parsed.question.removeprefix("Fill in the blank: "))
        assert not sentence.startswith("____") and sentence.replace("____", parsed.answer) in text
    elif fmt in ("multiple_choice", "contrastive"):
        options, correct = parsed.meta["options"], parsed.meta["correct"]
        assert in_text(options[correct], text)
        assert not any(in_text(o, text) for i, o in enumerate(options) if i != correct)
    else:  # true_false
        statement = without_context(parsed.question.removeprefix("True or false: "))
        assert parsed.meta["label"] is (name == "true_statement")
        if parsed.meta["label"]:
            assert statement in win["sentences"]
            return
        original = next(s for s in win["sentences"] if parsed.answer.endswith(" " + s))
        head = parsed.answer[len("False. ") : -len(original)].strip()
        wrong, right = re.fullmatch(r"(?:It|The date) was not (?:the )?(.+) but (?:the )?(.+)\.", head).groups()
        assert statement != original and statement.replace(wrong, right, 1) == original
        assert right in text and not in_text(wrong, text)


def replies(backend, name: str) -> list[tuple[dict, str]]:
    found = []
    for win in WINDOWS:
        with contextlib.suppress(Unsupported):
            found.append((win, backend.reply(ptype(name), win)))
    return found


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_every_supported_type_parses_and_is_grounded(backend, name):
    found = replies(backend, name)
    assert found, f"{name}: no window gave a reply"
    for win, reply in found:
        parsed = PARSERS[FORMATS[name]](reply)
        assert_grounded(name, parsed, win)
        assert "the text" not in parsed.question.lower() and "passage" not in parsed.question.lower()
        assert not re.search(r", (?:How|When|Who|Where|Which) ", parsed.question)  # "..., how many ...?"


@pytest.fixture(scope="module")
def index(backend):
    return backend.index


def question_for(index, sentence: str, target: str):
    entities = index.entities(sentence)
    clause = parse_clause(sentence, entities)
    entity = next(e for e in entities if e.text == target)
    question = clause and wh_question(clause, entity, index.is_proper)
    return (question.body, question.answer) if question else None


@pytest.mark.parametrize(
    "sentence, target, body, answer",
    [
        ("Gen. Friedrich Paulus commanded the 6th Army.", "Gen. Friedrich Paulus",
         "Who commanded the 6th Army?", "Gen. Friedrich Paulus."),
        ("Gen. Friedrich Paulus commanded the 6th Army.", "6th Army",
         "Which army did Gen. Friedrich Paulus command?", "The 6th Army."),
        ("Adm. Isoroku Yamamoto, commander of the Combined Fleet, proposed seizing Midway.", "Adm. Isoroku Yamamoto",
         "Who proposed seizing Midway?", "Adm. Isoroku Yamamoto."),
        ("Yorktown finally rolled over and sank on the morning of 7 June 1942.", "7 June 1942",
         "When did Yorktown finally roll over and sink?", "On the morning of 7 June 1942."),
        ("On 19 November 1942 the Red Army launched Operation Uranus.", "19 November 1942",
         "When did the Red Army launch Operation Uranus?", "On 19 November 1942."),
        ("About 300,000 Axis soldiers were trapped in the pocket.", "300,000",
         "How many Axis soldiers were trapped in the pocket?", "About 300,000 Axis soldiers."),
        ("American dive bombers sank four Japanese fleet carriers at Midway in June 1942.", "four",
         "How many Japanese fleet carriers did American dive bombers sink at Midway in June 1942?",
         "Four Japanese fleet carriers."),
        ("Paulus surrendered in Stalingrad on 31 January 1943.", "Stalingrad",
         "Where did Paulus surrender on 31 January 1943?", "In Stalingrad."),
        ("The Germans committed roughly 3,000 tanks organized into four panzer groups.", "3,000",
         "How many tanks did the Germans commit?", "Roughly 3,000 tanks."),
    ],
)  # fmt: skip
def test_wh_questions_are_grammatical_and_answered_by_the_sentence(index, sentence, target, body, answer):
    assert question_for(index, sentence, target) == (body, answer)


@pytest.mark.parametrize(
    "sentence, target",
    [
        ("Lt. Gen. Vasily Chuikov's 62nd Army held the city.", "Lt. Gen. Vasily Chuikov"),  # a possessive
        ("Germany declared war on Japan on 8 August 1945.", "Japan"),  # "on Japan" is no location
        (
            "Two days later, on 25 August 1939, Britain and Poland signed a pact.",
            "25 August 1939",
        ),  # "later" than what?
        ("He crossed the Volga in August 1942.", "August 1942"),  # who is "he"?
        ("The 6th Army, trapped since November 1942, surrendered.", "November 1942"),  # the date is not the verb's
        ("Unemployment fell from 14 percent in 1940 to 1 percent in 1944.", "1940"),  # two dates: which one?
        ("The Battle of Kursk was a major clash in Eastern Europe in July 1943.", "Eastern Europe"),  # the noun's place
        (
            "Enrico Fermi's team achieved the first controlled, self-sustaining chain reaction on 2 December 1942.",
            "2 December 1942",
        ),  # the cut leaves "the first controlled?"
        ("On 15 May 1942 Hitler adopted this concept.", "15 May 1942"),  # which concept?
        (
            "A German directive issued in late Sept. 1941 declared the intention to wipe out the city.",
            "Sept. 1941",
        ),  # "issued" is a participle: the main verb is "declared"
    ],
)
def test_no_question_when_the_sentence_cannot_carry_one(index, sentence, target):
    assert question_for(index, sentence, target) is None


BOUND = window("Attack on Pearl Harbor", [
    "Instead, it brought the United States into World War II in December 1941.",
    "The answer was the Mk IX, fitted with the Merlin 61 engine, in 1942.",
    "These facilities produced 1,000 aircraft for the Navy in 1943.",
    "Adm. Husband E. Kimmel commanded the Pacific Fleet at Pearl Harbor in 1941.",
])  # fmt: skip


@pytest.mark.parametrize("name", ["true_statement", "false_statement", "fill_blank", "fill_blank_date"])
def test_statements_and_blanks_use_only_sentences_that_stand_alone(name):
    backend = RulesBackend([*WINDOWS, BOUND], seed=7)
    used = set()
    for sample in range(12):
        with contextlib.suppress(Unsupported):  # a blank's samples end with the window's entities
            shown = without_context(backend.reply(ptype(name), BOUND, sample).splitlines()[0].split(": ", 1)[1])
            used.update(s for s in BOUND["sentences"] if SequenceMatcher(None, s, shown).ratio() > 0.7)
    assert used == {BOUND["sentences"][-1]}


def test_the_samples_of_a_blank_ask_about_different_entities_until_none_is_left(backend):
    asked = 0
    for win in WINDOWS:
        items = []
        for sample in range(60):
            try:
                reply = backend.reply(ptype("fill_blank"), win, sample)
            except Unsupported as exc:
                assert exc.reason == "samples_exhausted" if sample else True, exc.reason
                break
            parsed = PARSERS["fill_blank"](reply)
            items.append((without_context(parsed.question.removeprefix("Sentence: ")), parsed.answer))
        assert len(set(items)) == len(items), items  # each sample another (sentence, entity)
        asked += len(items)
    assert asked > len(WINDOWS) * 3  # more than samples_per_type's default 3 draws could give


def test_the_samples_of_a_question_type_ask_different_questions_while_there_are_any(backend):
    for win in WINDOWS:
        found = backend._questions(win, ("person",))
        questions = []
        for sample in range(len(found)):
            with contextlib.suppress(Unsupported):
                questions.append(PARSERS["qa"](backend.reply(ptype("who"), win, sample)).question)
        assert len({q.lower() for q in questions}) == len(questions), questions


def test_true_statement_explanations_name_a_fact_of_the_statement_and_vary(backend):
    explanations = set()
    for win in WINDOWS:
        for sample in range(4):
            with contextlib.suppress(Unsupported):
                parsed = PARSERS["true_false"](backend.reply(ptype("true_statement"), win, sample))
                statement = parsed.question.removeprefix("True or false: ")
                explanation = parsed.answer.removeprefix("True. ")
                facts = [e.text for e in backend.index.entities(statement)]
                assert any(f.lower() in explanation.lower() for f in facts), (statement, explanation)
                explanations.add(explanation)
    assert len(explanations) >= 10


def test_false_statement_swaps_one_entity_for_a_distractor(backend):
    for win, reply in replies(backend, "false_statement"):
        parsed = PARSERS["true_false"](reply)
        assert parsed.meta["label"] is False
        assert without_context(parsed.question.removeprefix("True or false: ")) not in win["sentences"]
        assert_grounded("false_statement", parsed, win)


@pytest.mark.parametrize("name", ["wrong_person", "wrong_place", "wrong_date"])
def test_false_premise_questions_are_corrected_by_the_text(backend, name):
    found = replies(backend, name)
    assert found
    for win, reply in found:
        parsed = PARSERS["qa"](reply)
        assert parsed.answer.startswith(("It was not ", "The date was not "))
        assert_grounded(name, parsed, win)


def test_contrastive_question_names_both_options_and_the_text_decides(backend):
    for name in ("contrast_person", "contrast_place", "contrast_date", "contrast_number"):
        for win, reply in replies(backend, name):
            parsed = PARSERS["contrastive"](reply)
            assert all(option in parsed.question for option in parsed.meta["options"])
            assert in_text(parsed.meta["options"][parsed.meta["correct"]], win["text"])
            assert parsed.meta["feature"] == name.removeprefix("contrast_")


def test_replies_are_deterministic_and_depend_on_the_seed():
    first, again, other = RulesBackend(WINDOWS, 1), RulesBackend(WINDOWS, 1), RulesBackend(WINDOWS, 2)

    def all_replies(backend):
        return [r for name in sorted(SUPPORTED) for _, r in replies(backend, name)]

    assert all_replies(first) == all_replies(again)
    assert all_replies(first) != all_replies(other)


@pytest.mark.parametrize("name", ["summary", "why", "how", "academic_rephrase", "definition", "timeline"])
def test_types_that_need_a_model_are_unsupported(backend, name):
    assert name not in SUPPORTED
    with pytest.raises(Unsupported) as error:
        backend.reply(ptype(name), STALINGRAD)
    assert error.value.reason == "type_not_supported"


def test_window_without_material_raises_with_a_reason(backend):
    with pytest.raises(Unsupported) as error:
        backend.reply(ptype("when"), T34)
    assert error.value.reason == "no_date_in_window"
    with pytest.raises(Unsupported) as error:
        backend.reply(ptype("who"), T34)
    assert error.value.reason == "no_person_in_window"


def test_a_registry_format_the_type_cannot_write_is_unsupported(backend):
    with pytest.raises(Unsupported) as error:
        backend.reply(ptype("who", "true_false"), STALINGRAD)
    assert error.value.reason == "format_not_supported"


def test_fingerprint_names_backend_version_and_seed(backend):
    fingerprint = backend.fingerprint()
    assert fingerprint["backend"] == "rules" and fingerprint["seed"] == 7 and fingerprint["version"] >= 1
    assert fingerprint == RulesBackend(WINDOWS, seed=7).fingerprint()


# --- the shipped sample corpus -------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_windows():
    windows = []
    for path in sorted((ROOT / "data" / "sample").glob("*.md")):
        article = parse_sample_article(path.read_text(encoding="utf-8"), str(path))
        windows.extend(window_article(article["title"], article_sentences(article), 8, 4))
    return windows


def test_another_sample_draws_other_questions_and_sample_0_is_unchanged(sample_windows):
    backend = RulesBackend(sample_windows, seed=0)
    first, second = [], []
    for win in sample_windows[:40]:
        for name in ("who", "contrast_date", "multiple_choice"):
            with contextlib.suppress(Unsupported):
                first.append(backend.reply(ptype(name), win))
                assert backend.compose(ptype(name), win) == first[-1]
                second.append(backend.reply(ptype(name), win, sample=1))
    assert len(first) > 20
    differ = sum(a != b for a, b in zip(first, second, strict=True))
    assert differ >= len(first) // 3  # other sentences, wordings or distractors


@pytest.mark.slow
def test_sample_corpus_yield_and_grounding(sample_windows):
    backend = RulesBackend(sample_windows, seed=0)
    parsed_per_type, failures = Counter(), []
    for name in sorted(SUPPORTED):
        for win in sample_windows:
            try:
                reply = backend.reply(ptype(name), win)
            except Unsupported:
                continue
            try:
                parsed = PARSERS[FORMATS[name]](reply)
                assert_grounded(name, parsed, win)
            except (ParseError, AssertionError, AttributeError, StopIteration) as exc:
                failures.append((name, reply, repr(exc)))
                continue
            parsed_per_type[name] += 1
    print("rules yield per type over", len(sample_windows), "windows:", dict(sorted(parsed_per_type.items())))
    assert not failures, failures[:3]
    assert sum(parsed_per_type.values()) >= 2000
    assert set(parsed_per_type) == SUPPORTED


@pytest.mark.parametrize(
    "article, sentences, name, question",
    [
        ("Erwin Rommel", ["Rommel remained in the small postwar army.", "Rommel arrived in Libya in February 1941."],
         "who", "Who arrived in Libya in February 1941?"),
        ("Guadalcanal campaign", ["About 11,000 Marines went ashore on Guadalcanal.",
                                  "The 1st Marine Division landed on Guadalcanal on 7 August 1942."],
         "where", "Where did the 1st Marine Division land on 7 August 1942?"),
    ],
)  # fmt: skip
def test_a_question_whose_answer_the_title_names_needs_a_date_to_stand_alone(article, sentences, name, question):
    win = window(article, sentences)
    backend = RulesBackend([*WINDOWS, win], seed=7)
    assert {PARSERS["qa"](backend.reply(ptype(name), win, sample)).question for sample in range(6)} == {question}


def test_a_statement_names_its_article_so_it_stands_alone():
    tank = window("T-34", ["The tank was supplied to many countries friendly to the Soviet Union in 1950."])
    backend = RulesBackend([*WINDOWS, tank], seed=7)
    parsed = PARSERS["true_false"](backend.reply(ptype("true_statement"), tank))
    assert re.match(
        r"True or false: (?:According to|In) the history of the T-34, the tank was supplied", parsed.question
    )
    rommel = window("Erwin Rommel", ["Field Marshal Erwin Rommel commanded Army Group B in 1944."])
    parsed = PARSERS["true_false"](RulesBackend([*WINDOWS, rommel], seed=7).reply(ptype("true_statement"), rommel))
    assert parsed.question == "True or false: " + rommel["sentences"][0]  # it names its article already
