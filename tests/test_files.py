import json

import pytest

from common.files import JsonlError, atomic_write, iter_jsonl_lines, read_jsonl, write_jsonl


def test_jsonl_round_trip_keeps_unicode(tmp_path):
    path = tmp_path / "a.jsonl"
    records = [{"title": "Kraków", "n": 1}, {"title": "Łódź", "n": 2}]
    assert write_jsonl(path, records) == 2
    assert list(read_jsonl(path)) == records
    assert "Kraków" in path.read_text(encoding="utf-8")


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(path) as handle:
        handle.write("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temp file left


def test_bad_lines_are_reported_with_their_reason_and_the_rest_survive(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"a": 1}\n\xff\xfe broken\n{not json\n\n{"a": 2}\n')
    lines = list(iter_jsonl_lines(path))
    assert [(line.lineno, line.error) for line in lines] == [
        (1, None),
        (2, "invalid_utf8"),
        (3, "invalid_json"),
        (5, None),
    ]
    with pytest.raises(JsonlError, match="bad.jsonl:2: invalid utf8"):
        list(read_jsonl(path))


def test_write_jsonl_is_one_compact_object_per_line(tmp_path):
    path = tmp_path / "a.jsonl"
    write_jsonl(path, [{"b": 1, "a": [1, 2]}])
    assert path.read_text() == '{"b":1,"a":[1,2]}\n'
    assert json.loads(path.read_text()) == {"b": 1, "a": [1, 2]}
