import json
from collections import Counter

import pytest

from corpus.clean import CleanParams, clean_article, normalise, strip_markup
from stages import clean

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
