import json
import random
import re
from collections import Counter

import pytest

from stages import qpt_wrap
from synth.qpt import Style, add_typos, load_styles, render, starts_mid_story, template_scope, window_scopes
from synth.qpt_entities import build_index, central_entities, central_years, window_entities, window_years
from synth.qpt_fields import articles_info, proper_nouns, section_phrase, window_fields

ROOT_TEMPLATES = qpt_wrap.Path(__file__).resolve().parent.parent / "data" / "qpt_templates.yaml"


def window(article, text, section="", start=0, wid=None, opens_section=None):
    sentences = [s.strip() + "." for s in text.split(".") if s.strip()]
    return {
        "id": wid or f"{article[:8]}-{start}",
        "article": article,
        "section": section,
        "sections": [section],
        "start": start,
        "opens_section": start == 0 if opens_section is None else opens_section,
        "end": start + len(sentences),
        "sentences": sentences,
        "text": " ".join(sentences),
    }


WINDOWS = [
    window(
        "Battle of Midway",
        "The Battle of Midway was a decisive naval battle fought near Midway Atoll in June 1942. "
        "Admiral Chester Nimitz ambushed the Japanese carriers. The carriers Hiryu and Yorktown were lost",
    ),
    window(
        "Battle of Midway",
        "Late in the day Hiryu launched a strike. Dive bombers from Yorktown and Enterprise "
        "found Hiryu and set it ablaze. It sank the next morning",
        section="Hiryu and Yorktown",
        start=8,
        opens_section=True,
    ),
    window(
        "Erwin Rommel",
        "Erwin Rommel was a German field marshal. He led the Afrika Korps in North Africa. "
        "His troops fought the 8th Army. He was forced to take his own life",
    ),
    window(
        "Operation Barbarossa",
        "Operation Barbarossa was the German invasion of the Soviet Union. "
        "It was prepared in secret. Its background lay in the Nazi ideology of living space",
        section="Background",
    ),
    window("The Blitz", "The Blitz was the German bombing campaign against British cities. It lasted for months"),
    window("Enigma machine", "The Enigma machine was a cipher device. It used rotors to scramble its letters"),
]


def write_windows(path, windows):
    path.write_text("".join(json.dumps(w) + "\n" for w in windows))
    return path


def run(tmp_path, params_file, windows=WINDOWS, templates=ROOT_TEMPLATES, **overrides):
    inp = write_windows(tmp_path / "windows.jsonl", windows)
    out, metrics = tmp_path / "qpt.jsonl", tmp_path / "qpt.json"
    code = qpt_wrap.main(
        [
            "--params",
            str(params_file(**overrides)),
            "--windows",
            str(inp),
            "--templates",
            str(templates),
            "--out",
            str(out),
            "--metrics",
            str(metrics),
        ]
    )
    return code, out, metrics


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_shipped_templates_have_at_least_28_styles():
    styles = load_styles(ROOT_TEMPLATES)
    assert len(styles) >= 28
    assert all(len(s.templates) >= 2 for s in styles)
    names = {s.name for s in styles}
    assert {
        "formal",
        "casual",
        "typo",
        "imperative",
        "conversational",
        "one_word_topic",
        "tell_me_about",
        "what_happened",
    } <= names
    assert any(s.typos for s in styles)


def test_smoke_records_use_the_design_format(tmp_path, params_file):
    code, out, metrics = run(tmp_path, params_file, qpt__phrasings_per_window=4)
    assert code == 0
    records = read(out)
    assert len(records) == 4 * len(WINDOWS)
    by_window = {w["id"]: w for w in WINDOWS}
    for r in records:
        assert r["kind"] == "qpt" and set(r) == {"id", "kind", "type", "window", "article", "messages", "meta"}
        assert [m["role"] for m in r["messages"]] == ["user", "assistant"]
        assert r["messages"][1]["content"] == by_window[r["window"]]["text"]
        assert r["meta"]["style"] == r["type"] and r["meta"]["template"]
        assert "{" not in r["messages"][0]["content"]
    assert len({r["id"] for r in records}) == len(records)
    m = json.loads(metrics.read_text())
    assert m["windows"] == len(WINDOWS) and m["records"] == len(records)
    assert sum(m["records_per_style"].values()) == len(records) and m["windows_short_of_styles"] == 0


def test_rerun_is_byte_identical(tmp_path, params_file):
    _, out, _ = run(tmp_path, params_file)
    first = out.read_bytes()
    _, out, _ = run(tmp_path, params_file)
    assert out.read_bytes() == first


def test_a_windows_questions_do_not_depend_on_other_windows(tmp_path, params_file):
    _, out, _ = run(tmp_path, params_file)
    alone = [r for r in read(out) if r["window"] == WINDOWS[3]["id"]]
    _, out, _ = run(tmp_path, params_file, windows=[WINDOWS[3], WINDOWS[4]])
    assert [r for r in read(out) if r["window"] == WINDOWS[3]["id"]] == alone


def test_the_seed_param_changes_the_sampling(tmp_path, params_file):
    _, out, _ = run(tmp_path, params_file, qpt__seed=1)
    first = [r["messages"][0]["content"] for r in read(out)]
    _, out, _ = run(tmp_path, params_file, qpt__seed=2)
    assert [r["messages"][0]["content"] for r in read(out)] != first


@pytest.mark.parametrize("n", [1, 4, 9])
def test_phrasings_per_window_distinct_styles_and_questions(tmp_path, params_file, n):
    _, out, _ = run(tmp_path, params_file, qpt__phrasings_per_window=n)
    records = read(out)
    per_window: dict[str, list] = {}
    for r in records:
        per_window.setdefault(r["window"], []).append(r)
    assert set(per_window) == {w["id"] for w in WINDOWS}
    for group in per_window.values():
        assert len(group) == n
        assert len({r["type"] for r in group}) == n
        assert len({r["messages"][0]["content"] for r in group}) == n


def test_add_typos_makes_small_real_edits():
    rng = random.Random(7)
    for _ in range(200):
        text = "what happened at midway during the war"
        typo = add_typos(text, 1, rng)
        assert typo != text and typo.split()[0][0] == "w"
        changed = [(a, b) for a, b in zip(text.split(), typo.split(), strict=True) if a != b]
        assert len(changed) == 1 and abs(len(changed[0][0]) - len(changed[0][1])) <= 1
        assert changed[0][0][0] == changed[0][1][0]  # the first letter is never the slip


def test_typo_style_really_contains_a_typo(tmp_path, params_file):
    styles = [s for s in load_styles(ROOT_TEMPLATES) if s.typos]
    templates = tmp_path / "typos.yaml"
    templates.write_text(
        json.dumps(
            {
                "styles": [
                    {
                        "name": s.name,
                        "templates": list(s.templates),
                        "case": s.case,
                        "strip_end": s.strip_end,
                        "typos": s.typos,
                    }
                    for s in styles
                ]
            }
        )
    )
    _, out, _ = run(tmp_path, params_file, templates=templates, qpt__phrasings_per_window=len(styles))
    vocabulary = {w.lower() for s in styles for t in s.templates for w in re.findall(r"[A-Za-z]+", t)}
    vocabulary |= {w.lower() for w_ in WINDOWS for w in re.findall(r"[A-Za-z]+", w_["text"] + " " + w_["section"])}
    records = read(out)
    assert records
    for r in records:
        words = {w.lower() for w in re.findall(r"[A-Za-z]+", r["messages"][0]["content"])}
        assert words - vocabulary, r["messages"][0]["content"]


def test_templates_needing_a_field_are_skipped_for_windows_without_it(tmp_path, params_file):
    templates = tmp_path / "t.yaml"
    templates.write_text(
        json.dumps(
            {
                "styles": [
                    {"name": "needs_year", "templates": ["What happened in {year} at {place}?"]},
                    {"name": "needs_entity", "templates": ["How does {entity} fit into the story of {subject}?"]},
                    {"name": "needs_section", "templates": ["Tell me about {section_of} {subject}."]},
                    {"name": "plain", "templates": ["Tell me about {subject}."]},
                ]
            }
        )
    )
    _, out, metrics = run(tmp_path, params_file, templates=templates, qpt__phrasings_per_window=4)
    styles = {w["id"]: {r["type"] for r in read(out) if r["window"] == w["id"]} for w in WINDOWS}
    # Midway lead: no section, and Nimitz and 1942 are named only in passing
    assert styles[WINDOWS[0]["id"]] == {"plain"}
    assert styles[WINDOWS[4]["id"]] == {"plain"}  # the Blitz: no year, entity or section
    assert "needs_entity" not in styles[WINDOWS[2]["id"]]  # Rommel: the 8th Army only in passing
    assert json.loads(metrics.read_text())["windows_short_of_styles"] == len(WINDOWS)


def test_fields_read_naturally():
    info = articles_info(WINDOWS)
    assert (info["Battle of Midway"].subject, info["Battle of Midway"].topic) == ("the Battle of Midway", "Midway")
    assert info["Battle of Midway"].place == "Midway" and info["Battle of Midway"].kind == "event"
    assert (info["Erwin Rommel"].kind, info["Erwin Rommel"].topic) == ("person", "Rommel")
    assert info["Operation Barbarossa"].subject == "Operation Barbarossa"
    assert info["The Blitz"].subject == "the Blitz" and info["Enigma machine"].kind == "thing"
    proper = proper_nouns(s for w in WINDOWS for s in w["sentences"])
    index = build_index(WINDOWS)
    assert section_phrase("Background", proper) == ("the background", True)
    assert section_phrase("Hiryu and Yorktown", proper) == ("Hiryu and Yorktown", False)
    assert section_phrase("Between the Wars", proper)[0] == "the period between the wars"
    fields = window_fields(WINDOWS[3], info["Operation Barbarossa"], proper, index, random.Random(0))
    formal = Style("formal", ("",))
    assert render("Explain {section_of} {subject} in formal terms.", fields, formal, random.Random(0)) == (
        "Explain the background of Operation Barbarossa in formal terms."
    )
    fields = window_fields(WINDOWS[1], info["Battle of Midway"], proper, index, random.Random(0))
    assert render("Tell me about {section_of} {subject}.", fields, formal, random.Random(0)) == (
        "Tell me about Hiryu and Yorktown in the Battle of Midway."
    )
    lower = Style("casual", ("",), case="lower", strip_end=True)
    assert render("What happened at {place}?", fields, lower, random.Random(0)) == "what happened at midway"
    assert render("{article}", fields, Style("one", ("",), strip_end=True), random.Random(0)) == "Battle of Midway"


def test_bad_windows_input_is_a_clear_error(tmp_path, params_file, caplog):
    inp = tmp_path / "windows.jsonl"
    inp.write_text(json.dumps(WINDOWS[0]) + "\n{oops\n")
    out = tmp_path / "qpt.jsonl"
    code = qpt_wrap.main(
        [
            "--params",
            str(params_file()),
            "--windows",
            str(inp),
            "--templates",
            str(ROOT_TEMPLATES),
            "--out",
            str(out),
            "--metrics",
            str(tmp_path / "m.json"),
        ]
    )
    assert code == 2 and "windows.jsonl:2: invalid json" in caplog.text and not out.exists()
    code, out, _ = run(tmp_path, params_file, windows=[WINDOWS[0], {"id": "x", "article": "A"}])
    assert (
        code == 2
        and "record 2 (window x) is not a window: missing or wrong type: text, start" in caplog.text
        and not out.exists()
    )


@pytest.mark.parametrize(
    "styles, message",
    [
        ([{"name": "x", "templates": ["Tell me about {battle}."]}], "unknown field(s) ['battle']"),
        ([{"name": "x", "templates": []}], "non-empty list"),
        ([{"name": "x", "templates": ["a {subject}"]}, {"name": "x", "templates": ["b {subject}"]}], "duplicate"),
        ([{"name": "x", "templates": ["a {subject}"], "case": "title"}], "case must be"),
        ([{"name": "x", "templates": ["a {subject}"], "typo": 1}], "unknown key(s) ['typo']"),
    ],
)
def test_bad_templates_are_a_clear_error(tmp_path, params_file, caplog, styles, message):
    templates = tmp_path / "t.yaml"
    templates.write_text(json.dumps({"styles": styles}))
    code, out, _ = run(tmp_path, params_file, templates=templates)
    assert code == 2 and message in caplog.text and not out.exists()


def test_a_misspelled_param_is_named(tmp_path, params_file, caplog):
    params = params_file()
    params.write_text(params.read_text().replace("phrasings_per_window", "phrasing_per_window"))
    code = qpt_wrap.main(
        [
            "--params",
            str(params),
            "--windows",
            str(write_windows(tmp_path / "w.jsonl", WINDOWS)),
            "--templates",
            str(ROOT_TEMPLATES),
            "--out",
            str(tmp_path / "q.jsonl"),
            "--metrics",
            str(tmp_path / "m.json"),
        ]
    )
    assert code == 2 and "phrasing_per_window" in caplog.text


def test_styles_are_spread_over_the_corpus(tmp_path, params_file):
    _, out, _ = run(tmp_path, params_file, qpt__phrasings_per_window=4)
    assert len(Counter(r["type"] for r in read(out))) >= 12


def test_entities_are_named_as_a_question_would_name_them():
    sentences = [
        "Col. Gen. Gerd von Rundstedt led Army Group A through the Ardennes.",
        "The 7th Panzer Division reached the coast.",
        "Belgium and the Netherlands fell in May 1940, and Paris in June.",
        "Churchill became prime minister.",
        "Later Operation Dynamo began.",
    ]
    win = {**window("Battle of France", "x"), "sentences": sentences, "text": " ".join(sentences)}
    index = build_index([win])
    found = window_entities(win, index)
    assert found["person"] == ["Gerd von Rundstedt", "Churchill"]
    assert found["unit"] == ["Army Group A", "the 7th Panzer Division"]
    assert "place" not in found  # a place mentioned in passing plays no "role"
    assert found["operation"] == ["Operation Dynamo"]
    assert window_years(win, index) == ["1940"]


def test_broad_questions_only_for_windows_that_open_their_article_or_a_section():
    assert template_scope("Tell me about {subject}.") == "article"
    assert template_scope("Summarize {section_of} {subject}.") == "section"
    assert template_scope("What role did {entity} play in {thing}?") == "window"
    assert window_scopes(WINDOWS[0]) == {"article", "section", "window"}
    assert window_scopes(WINDOWS[1]) == {"section", "window"}
    assert window_scopes({**WINDOWS[1], "opens_section": False}) == {"window"}


def test_a_mid_section_window_is_asked_about_what_it_names(tmp_path, params_file):
    middle = window(
        "Battle of Midway",
        "Admiral Chester Nimitz ordered the carriers to sea on 28 May 1942. "
        "Yorktown was repaired at Pearl Harbor in three days. Nimitz sent the fleets north of Midway",
        section="Battle",
        start=4,
        opens_section=False,
    )
    _, out, _ = run(tmp_path, params_file, windows=[WINDOWS[0], middle], qpt__phrasings_per_window=4)
    templates = [r["meta"]["template"] for r in read(out) if r["window"] == middle["id"]]
    assert templates and all(template_scope(t) == "window" for t in templates), templates
    assert all("{person}" in t or "{entity}" in t or "{year}" in t for t in templates)


def test_an_answer_does_not_start_mid_story(tmp_path, params_file):
    mid = window(
        "Erwin Rommel",
        "He was wounded in July 1944. His car was strafed by a British fighter near Vimoutiers. "
        "Field Marshal Günther von Kluge took over Army Group B in July 1944. Rommel recovered at home in Herrlingen in 1944",
        start=12,
        opens_section=False,
    )
    lost = window(
        "Erwin Rommel", "He was ill. After that he went home. Rommel left in 1944", start=20, opens_section=False
    )  # "After that he ...": no pronoun first, but it leans on the sentence before
    _, out, metrics = run(tmp_path, params_file, windows=[WINDOWS[2], mid, lost], qpt__phrasings_per_window=2)
    answers = {r["messages"][1]["content"] for r in read(out) if r["window"] == mid["id"]}
    assert answers == {" ".join(mid["sentences"][2:])}
    assert not any(r["window"] == lost["id"] for r in read(out))
    assert json.loads(metrics.read_text())["windows_mid_story"] == 1


def test_entities_and_years_are_what_the_window_is_about():
    win = window(
        "Battle of Midway",
        "The carriers sailed in May 1942. Admiral Chester Nimitz read the Japanese plan. "
        "Nimitz sent his carriers north in June 1942. Hitler was far away in 1941. The battle began in June 1942",
    )
    index = build_index([win])
    assert central_entities(win, index)["person"] == ["Chester Nimitz"]  # twice (once by surname), not Hitler
    assert central_years(win, index) == ["1942"]  # in three sentences; 1941 only in passing
    tied = {**win, "sentences": win["sentences"][:3] + ["Hitler was far away in 1941."] * 2}
    assert central_years(tied, index) == []  # 1941 and 1942 twice each: the window is about neither


def test_a_sentence_whose_he_has_no_person_before_it_starts_mid_story():
    index = build_index(WINDOWS)
    assert starts_mid_story('After Iwo Jima he praised the Marines with the words "uncommon valor".', index)
    assert not starts_mid_story("After Iwo Jima Admiral Chester Nimitz praised the Marines.", index)
