import json

import pytest

from corpus.sentences import split_sentences
from corpus.windows import window_article, window_starts
from stages import window


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "The 6th Army under Lt. Gen. Friedrich Paulus reached the Volga. U.S. forces landed in Nov. 1942.",
            ["The 6th Army under Lt. Gen. Friedrich Paulus reached the Volga.", "U.S. forces landed in Nov. 1942."],
        ),
        (
            "Soviet losses were c. 1.5 million men. The pocket closed in Jan. 1943 and Paulus gave up.",
            ["Soviet losses were c. 1.5 million men.", "The pocket closed in Jan. 1943 and Paulus gave up."],
        ),
        (
            "Approx. 2.5 million soldiers fought. Maj. Gen. Smith met Adm. Nimitz on Feb. 2. It ended.",
            ["Approx. 2.5 million soldiers fought.", "Maj. Gen. Smith met Adm. Nimitz on Feb. 2.", "It ended."],
        ),
        (
            "Troops of the U.S.S.R. crossed the Oder. Berlin fell.",
            ["Troops of the U.S.S.R. crossed the Oder.", "Berlin fell."],
        ),
    ],
)
def test_sentence_splitter_knows_military_abbreviations(text, expected):
    assert split_sentences(text) == expected


@pytest.mark.parametrize(
    "n, size, stride, expected",
    [(0, 8, 4, []), (5, 8, 4, [0]), (8, 8, 4, [0]), (16, 8, 4, [0, 4, 8]), (18, 8, 4, [0, 4, 8, 10])],
)
def test_window_starts_cover_every_sentence(n, size, stride, expected):
    assert window_starts(n, size, stride) == expected


def make_article(title, n):
    return {
        "title": title,
        "sections": [
            {"heading": "Lead", "text": " ".join(f"{title} event number {i} happened." for i in range(n // 2))},
            {"heading": "Later", "text": " ".join(f"{title} event number {i} happened." for i in range(n // 2, n))},
        ],
    }


def run(tmp_path, params_file, articles, **overrides):
    inp = tmp_path / "clean.jsonl"
    inp.write_text("".join(json.dumps(a) + "\n" for a in articles))
    out = tmp_path / "windows.jsonl"
    code = window.main(
        [
            "--params",
            str(params_file(**overrides)),
            "--in",
            str(inp),
            "--out",
            str(out),
            "--metrics",
            str(tmp_path / "window.json"),
        ]
    )
    return code, out


def test_windows_stay_inside_one_article_and_keep_their_source(tmp_path, params_file):
    code, out = run(tmp_path, params_file, [make_article("Kursk", 12), make_article("Midway", 10)])
    assert code == 0
    windows = [json.loads(x) for x in out.read_text().splitlines()]
    for w in windows:
        assert all(s.startswith(w["article"]) for s in w["sentences"])
        assert w["end"] - w["start"] == len(w["sentences"]) == 8
    kursk = [w for w in windows if w["article"] == "Kursk"]
    assert [(w["start"], w["end"]) for w in kursk] == [(0, 8), (4, 12)]
    assert kursk[0]["section"] == "Lead" and kursk[0]["sections"] == ["Lead", "Later"]
    assert len({w["id"] for w in windows}) == len(windows)
    assert json.loads((tmp_path / "window.json").read_text()) == {"articles": 2, "sentences": 22, "windows": 4}


def test_a_window_knows_whether_it_opens_a_section(tmp_path, params_file):
    # Lead holds sentences 0-5 and Later 6-11
    _, out = run(tmp_path, params_file, [make_article("Kursk", 12)], window__size=6, window__stride=3)
    opens = {w["start"]: w["opens_section"] for w in map(json.loads, out.read_text().splitlines())}
    assert opens == {0: True, 3: False, 6: True}


def test_rerun_is_byte_identical_and_ids_are_stable(tmp_path, params_file):
    _, out = run(tmp_path, params_file, [make_article("Kursk", 12)])
    first = out.read_bytes()
    _, out = run(tmp_path, params_file, [make_article("Kursk", 12)])
    assert out.read_bytes() == first
    pairs = [("Lead", "A sentence.")] * 3
    assert next(window_article("X", pairs, 8, 4))["id"] == next(window_article("X", pairs, 8, 4))["id"]


def test_stride_param_changes_the_windows(tmp_path, params_file):
    _, out = run(tmp_path, params_file, [make_article("Kursk", 12)], window__stride=2)
    assert len(out.read_text().splitlines()) == 3


def test_bad_input_is_a_clear_error(tmp_path, params_file, caplog):
    inp = tmp_path / "clean.jsonl"
    inp.write_text('{"title": "x"}\n{oops\n')
    code = window.main(
        [
            "--params",
            str(params_file()),
            "--in",
            str(inp),
            "--out",
            str(tmp_path / "w.jsonl"),
            "--metrics",
            str(tmp_path / "m.json"),
        ]
    )
    assert code == 2
    assert "clean.jsonl:2: invalid json" in caplog.text
    assert not (tmp_path / "w.jsonl").exists()


def test_a_record_that_is_not_an_article_is_named(tmp_path, params_file, caplog):
    code, out = run(tmp_path, params_file, [make_article("Kursk", 12), {"title": "x"}])
    assert code == 2
    assert "record 2 is not a clean article" in caplog.text
    assert not out.exists()
