import json
import re
import textwrap
from collections import Counter

import pytest

from common.params import load_section
from corpus.articles import load_sample, parse_sample_article
from corpus.clean import CleanParams, clean_article, clean_section_text
from corpus.markup import normalise, strip_markup
from corpus.windows import article_sentences
from stages import clean
from tests.conftest import ROOT

PARAMS = CleanParams(min_chars=40, min_prose_words=8, drop_headings=("References", "See also", "External links"))


def article(title="Battle of Kursk", sections=None):
    return {
        "title": title,
        "source": "test",
        "sections": sections
        or [
            {
                "heading": "",
                "level": 1,
                "text": "The Battle of Kursk began on 5 July 1943.[1][2] It was the largest tank battle.[citation needed]",
            },
            {
                "heading": "Background",
                "level": 2,
                "text": "Operation Citadel was planned by the OKW in spring 1943 after the defeat at Stalingrad.",
            },
            {"heading": "See also", "level": 2, "text": "Battle of Prokhorovka\nOperation Kutuzov"},
            {"heading": "Sub list", "level": 3, "text": "Anything under See also goes too."},
            {"heading": "References", "level": 2, "text": "Glantz, David. The Battle of Kursk. 1999."},
        ],
    }


def run(tmp_path, params_file, lines: list[bytes]):
    inp = tmp_path / "raw.jsonl"
    inp.write_bytes(b"".join(lines))
    out = tmp_path / "clean.jsonl"
    metrics = tmp_path / "clean.json"
    code = clean.main(
        [
            "--params",
            str(params_file(clean__min_chars=40)),
            "--in",
            str(inp),
            "--out",
            str(out),
            "--metrics",
            str(metrics),
        ]
    )
    return code, out, metrics


def line(record) -> bytes:
    return (json.dumps(record) + "\n").encode()


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Paulus surrendered.[12] The army was gone.[a]", "Paulus surrendered. The army was gone."),
        ("It fell in 1943.[citation needed] More [clarification needed] text.", "It fell in 1943. More text."),
        ("He led the [[6th Army (Wehrmacht)|6th Army]] to the [[Volga]].", "He led the 6th Army to the Volga."),
        ("'''Zhukov''' won.<ref name=\"g\">Glantz</ref> {{sfn|Glantz|1995}}", "Zhukov won."),
        ("A<br/>B <span class='x'>C</span>", "AB C"),
        (
            "Losses were [[File:Map.png|thumb|A [[map]]]] heavy [https://example.org source].",
            "Losses were heavy source.",
        ),
    ],
)
def test_strip_markup(raw, expected):
    assert normalise(strip_markup(raw)) == expected


def test_normalise_folds_unicode_and_whitespace():
    assert normalise("The\u00a0Soviet\u200b   army\tadvanced ,  fast .") == "The Soviet army advanced, fast."
    assert normalise("ＴＯＫＹＯ ﬁnal") == "TOKYO final"


def test_reference_sections_their_subsections_and_lists_are_dropped():
    counts = Counter()
    cleaned, reason = clean_article(article(), PARAMS, counts)
    assert reason is None
    assert [s["heading"] for s in cleaned["sections"]] == ["", "Background"]
    assert cleaned["sections"][0]["text"] == "The Battle of Kursk began on 5 July 1943. It was the largest tank battle."
    assert counts["section_reference"] == 2 and counts["section_under_dropped_heading"] == 1


def test_tables_and_list_lines_are_not_prose():
    counts = Counter()
    text = "{| class=wikitable\n| Axis || 780,000\n|}\n* Bullet item\nCaption without a stop\nA real sentence that ends properly here."
    cleaned, _ = clean_article(article(sections=[{"heading": "", "level": 1, "text": text * 1}]), PARAMS, counts)
    assert cleaned["sections"][0]["text"] == "A real sentence that ends properly here."
    assert counts["table"] == 3 and counts["list"] == 1 and counts["not_prose"] == 1


def test_main_smoke_and_byte_identical_rerun(tmp_path, params_file):
    code, out, metrics = run(tmp_path, params_file, [line(article()), line(article("Battle of Midway"))])
    assert code == 0
    first = out.read_bytes()
    assert len(first.splitlines()) == 2
    assert run(tmp_path, params_file, [line(article()), line(article("Battle of Midway"))])[1].read_bytes() == first
    assert json.loads(metrics.read_text())["articles_out"] == 2


def test_bad_records_are_counted_drops_and_the_rest_survive(tmp_path, params_file):
    lines = [
        line(article()),
        b"\xff\xfe not utf-8\n",
        b"{broken json\n",
        line({"title": "No text", "sections": []}),
        line({"sections": [{"heading": "", "text": "No title at all here in this record."}]}),
        line(article(sections=[{"heading": "", "level": 1, "text": "Too short."}])),
        line(["not", "an", "object"]),
        line(article()),  # the same title twice
    ]
    code, out, metrics = run(tmp_path, params_file, lines)
    assert code == 0
    assert [json.loads(x)["title"] for x in out.read_text().splitlines()] == ["Battle of Kursk"]
    dropped = json.loads(metrics.read_text())["dropped"]
    assert dropped == {
        "invalid_utf8": 1,
        "invalid_json": 1,
        "no_text": 1,
        "no_title": 1,
        "too_short": 1,
        "not_an_object": 1,
        "duplicate_title": 1,
    }


def test_an_empty_input_is_a_clear_error(tmp_path, params_file, caplog):
    code, out, _ = run(tmp_path, params_file, [])
    assert code == 2
    assert "input is empty" in caplog.text
    assert not out.exists()


def section_text(text: str, counts: Counter | None = None) -> str:
    return clean_section_text(text, PARAMS, Counter() if counts is None else counts)


def test_hard_wrapped_lines_are_joined_into_paragraphs():
    wrapped = (
        "The Sixth Army was encircled at Stalingrad in November 1942, and\n"
        "its commander, Gen. Friedrich Paulus, was forbidden to break out.\n"
        "The airlift promised by Göring never brought in more than a\n"
        "fraction of the supplies the army needed.\n"
        "\n"
        "Paulus surrendered on 31 January 1943.\n"
    )
    assert section_text(wrapped) == (
        "The Sixth Army was encircled at Stalingrad in November 1942, and its commander, Gen. Friedrich "
        "Paulus, was forbidden to break out. The airlift promised by Göring never brought in more than a "
        "fraction of the supplies the army needed.\n\nPaulus surrendered on 31 January 1943."
    )


def test_a_line_broken_at_a_hyphen_or_dash_joins_without_a_space():
    text = "The well-\nknown raid on Dieppe failed in August 1942—a costly lesson—\nthat shaped Overlord."
    assert (
        section_text(text)
        == "The well-known raid on Dieppe failed in August 1942—a costly lesson—that shaped Overlord."
    )


def test_a_short_unpunctuated_line_after_a_sentence_is_a_caption_not_prose():
    counts = Counter()
    text = (
        "Operation Citadel opened on 5 July 1943 with attacks on both sides of the Kursk salient.\n"
        "Map of the salient\n"
        "The northern attack stalled within a week against the Soviet defence lines."
    )
    assert section_text(text, counts) == (
        "Operation Citadel opened on 5 July 1943 with attacks on both sides of the Kursk salient.\n\n"
        "The northern attack stalled within a week against the Soviet defence lines."
    )
    assert counts["not_prose"] == 1


def test_list_items_that_are_sentences_stay_and_link_lists_go():
    counts = Counter()
    text = (
        "- The 6th Army surrendered on 2 February 1943.\n"
        "* Operation Kutuzov\n"
        "* [[Operation Uranus]]\n"
        "1. Soviet forces crossed the Dnieper in autumn 1943.\n"
        "#Battle of Prokhorovka"
    )
    assert section_text(text, counts) == (
        "The 6th Army surrendered on 2 February 1943.\n\nSoviet forces crossed the Dnieper in autumn 1943."
    )
    assert counts["list"] == 3


def test_a_page_whose_text_is_all_lists_is_no_prose_not_no_text():
    record = article(sections=[{"heading": "", "level": 1, "text": "* Operation Kutuzov\n* Operation Rumyantsev"}])
    assert clean_article(record, PARAMS, Counter()) == (None, "no_prose")
    assert clean_article(article(sections=[{"heading": "", "level": 1, "text": ""}]), PARAMS, Counter())[1] == "no_text"


# --- real inputs: a hard-wrapped public-domain speech and a Markdown article -------------------

FIXTURES = ROOT / "tests/fixtures"
# A real sentence opens like one, ends like one and has at least two words.
REAL_SENTENCE = re.compile(r"^[\"“‘'(]?[A-Z0-9].*\S\s+\S.*[.!?][\"”’')\]]*$")
MARKDOWN_LEFT = re.compile(r"[\[\]*_`#|<>]|\]\(|!\[|https?://|^[-+]\s")


def fixture_sentences(article_record: dict) -> list[str]:
    cleaned, reason = clean_article(article_record, PARAMS, Counter())
    assert reason is None
    return [sentence for _, sentence in article_sentences(cleaned)]


def speech_record(name: str) -> dict:
    source, text = (FIXTURES / name).read_text(encoding="utf-8").split("\n---\n", 1)
    assert "public domain" in source
    return article(title=name, sections=[{"heading": "", "level": 1, "text": text}])


def real_share(sentences: list[str]) -> float:
    return sum(bool(REAL_SENTENCE.match(s)) and not MARKDOWN_LEFT.search(s) for s in sentences) / len(sentences)


@pytest.mark.parametrize(
    "name, n_sentences, whole_sentence",
    [
        (
            "speech_fdr_day_of_infamy.txt",
            27,
            "Yesterday, December 7th, 1941—a date which will live in infamy—the United States of America was "
            "suddenly and deliberately attacked by naval and air forces of the Empire of Japan.",
        ),
        (
            "speech_eisenhower_d_day_order.txt",
            19,
            "The hopes and prayers of liberty-loving people everywhere march with you.",
        ),
    ],
)
def test_a_hard_wrapped_speech_gives_real_sentences(name, n_sentences, whole_sentence):
    sentences = fixture_sentences(speech_record(name))
    assert whole_sentence in sentences
    assert len(sentences) == n_sentences  # counted by hand in the source text (+ the salutation line)
    assert real_share(sentences) >= 0.95


def test_a_markdown_article_keeps_its_prose_and_loses_its_markup():
    path = FIXTURES / "operation_dragoon.md"
    sentences = fixture_sentences(parse_sample_article(path.read_text(encoding="utf-8"), path.name))
    assert not [s for s in sentences if MARKDOWN_LEFT.search(s)]
    assert real_share(sentences) >= 0.95
    for kept in (
        "Operation Dragoon was the Allied invasion of southern France that began on 15 August 1944.",
        "The landing was first meant to take place at the same time as Operation Overlord in Normandy.",
        "Delta, near Saint-Tropez, where the 45th Infantry Division went ashore.",  # a list item that is prose
        "The German Nineteenth Army under General Friedrich Wiese retreated north up the Rhône valley.",
        "The harbours were wrecked by the Germans before they surrendered, but engineers had Marseille "
        "working again within weeks.",  # a block quote
    ):
        assert kept in sentences
    text = " ".join(sentences)
    for gone in ("Landing craft off the coast", "Cavalaire |", "Written for the ww2lm tests", "oob", "Supply figures"):
        assert gone not in text


@pytest.mark.parametrize("heading", ["Selected bibliography", "Books", "Editions", "Notes and references", "works"])
def test_the_shipped_params_drop_bibliography_like_sections(heading):
    params = load_section(ROOT / "params.yaml", "clean", CleanParams)
    prose = "The Sixth Army surrendered at Stalingrad on 2 February 1943 after a long siege."
    listing = "Beevor, Antony (1998). Stalingrad. Viking. This edition has a new preface by the author."
    record = article(
        sections=[
            {"heading": "", "level": 1, "text": prose * 10},
            {"heading": heading, "level": 2, "text": listing},
            {"heading": "Reprints", "level": 3, "text": listing},
        ]
    )
    counts = Counter()
    cleaned, _ = clean_article(record, params, counts)
    assert [s["heading"] for s in cleaned["sections"]] == [""]
    assert counts["section_reference"] == 1 and counts["section_under_dropped_heading"] == 1


def test_one_paragraph_a_line_stays_one_paragraph_a_line_unless_a_line_stops_mid_sentence():
    first = "The Battle of the Bulge began on 16 December 1944 in the Ardennes forest. " * 2
    second = "Bastogne was held by the 101st Airborne Division until Patton's Third Army arrived. " * 2
    soft_wrapped = "The German offensive had aimed at Antwerp, but fuel shortages and the weather " * 2
    text = f"{first.strip()}\n{second.strip()}\n{soft_wrapped.strip()}\nended it in January 1945."
    assert section_text(text).split("\n\n") == [
        first.strip(),
        second.strip(),
        f"{soft_wrapped.strip()} ended it in January 1945.",
    ]


def test_a_wrapped_line_that_starts_like_a_list_item_continues_its_sentence():
    text = (
        "The Allies landed in Normandy in June\n"
        "1944. The beachhead held against the German counter-attacks of the\n"
        "- admittedly weakened - panzer divisions sent to the coast.\n"
        "- The next list item starts after a finished sentence and is one."
    )
    assert section_text(text).split("\n\n") == [
        "The Allies landed in Normandy in June 1944. The beachhead held against the German counter-attacks "
        "of the - admittedly weakened - panzer divisions sent to the coast.",
        "The next list item starts after a finished sentence and is one.",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("width", [72])
def test_the_sample_corpus_hard_wrapped_gives_the_same_sentences(width):
    """Every shipped article wrapped at `width` columns: the same sentences as unwrapped."""
    params = load_section(ROOT / "params.yaml", "clean", CleanParams)

    def sentences(record):
        return [s for _, s in article_sentences(clean_article(record, params, Counter())[0])]

    for record in load_sample(ROOT / "data/sample"):
        wrapped = [
            {**s, "text": "\n\n".join("\n".join(textwrap.wrap(p, width)) for p in s["text"].split("\n\n"))}
            for s in record["sections"]
        ]
        assert sentences({**record, "sections": wrapped}) == sentences(record), record["title"]
