import json
from pathlib import Path

import pytest

from tools import grades

GRADES = Path(__file__).resolve().parent.parent / "data" / "grades" / "sample.jsonl"


def record(i, generator="rules"):
    return {
        "id": f"r{i}",
        "type": "who",
        "window": f"w{i % 3}",
        "messages": [{"role": "user", "content": f"Q{i}?"}, {"role": "assistant", "content": f"A{i}."}],
        "meta": {"generator": generator},
    }


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def inputs(tmp_path):
    records = write(tmp_path / "records.jsonl", [record(i) for i in range(20)] + [record(99, "openai")])
    qpt = write(tmp_path / "qpt.jsonl", [record(100 + i, "qpt") for i in range(6)])
    windows = write(tmp_path / "windows.jsonl", [{"id": f"w{i}", "text": f"Window {i}."} for i in range(3)])
    return ["--records", str(records), "--qpt", str(qpt), "--windows", str(windows)]


def test_sample_is_seeded_draws_only_rules_records_and_never_overwrites(tmp_path, inputs, capsys):
    out = tmp_path / "g" / "sample.jsonl"
    assert grades.main(["sample", *inputs, "--out", str(out), "--rules", "5", "--qpt-count", "2"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["kind"] for r in rows] == ["rules"] * 5 + ["qpt"] * 2
    assert "r99" not in {r["id"] for r in rows} and all(r["window_text"].startswith("Window") for r in rows)
    assert all(r[c] is None for r in rows for c in grades.CRITERIA)
    first = out.read_bytes()
    out.write_text("graded by hand\n")
    assert grades.main(["sample", *inputs, "--out", str(out), "--rules", "5", "--qpt-count", "2"]) == 2
    assert out.read_text() == "graded by hand\n" and "exists" in capsys.readouterr().err
    again = tmp_path / "again.jsonl"
    grades.main(["sample", *inputs, "--out", str(again), "--rules", "5", "--qpt-count", "2"])
    assert again.read_bytes() == first


def test_score_counts_each_criterion_and_all_four(tmp_path, capsys):
    rows = [
        {"id": "a", "kind": "rules", "natural": True, "answerable": True, "correct": True, "true": True},
        {"id": "b", "kind": "rules", "natural": False, "answerable": True, "correct": True, "true": True},
        {"id": "c", "kind": "qpt", "natural": True, "answerable": True, "correct": False, "true": True},
        {"id": "d", "kind": "qpt", "natural": True, "answerable": True, "correct": True, "true": True},
    ]
    path = write(tmp_path / "g.jsonl", rows)
    result = grades.score(rows, "g")
    assert result["rules"]["natural"] == 0.5 and result["qpt"]["correct"] == 0.5
    assert result["all"]["all_four"] == 0.5 and result["all"]["n"] == 4
    assert grades.main(["score", str(path)]) == 0
    assert "all: n=4" in capsys.readouterr().out
    assert grades.main(["score", str(path), "--min-pass", "0.9"]) == 1


def test_an_ungraded_row_is_named(tmp_path, capsys):
    path = write(tmp_path / "g.jsonl", [{"id": "a", "kind": "rules", "natural": True, "answerable": None}])
    assert grades.main(["score", str(path)]) == 2
    assert "g.jsonl:1 (a): not graded: answerable, correct, true" in capsys.readouterr().err


def test_the_committed_grades_are_complete():
    result = grades.score(grades.read_jsonl(GRADES), str(GRADES))
    assert result["rules"]["n"] == 100 and result["qpt"]["n"] == 30
