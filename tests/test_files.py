import json
import os
import shutil
import time

import pytest

from common import files
from common.files import JsonlError, atomic_dir, atomic_write, iter_jsonl_lines, read_jsonl, write_jsonl


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


def build(path, text, fail=False):
    with atomic_dir(path) as tmp:
        (tmp / "data.txt").write_text(text)
        if fail:
            raise RuntimeError("killed while building")


def names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_atomic_dir_swaps_in_the_new_folder_and_leaves_nothing_else(tmp_path):
    out = tmp_path / "out"
    build(out, "old")
    build(out, "new")
    assert (out / "data.txt").read_text() == "new" and names(tmp_path) == ["out"]


def test_a_failed_build_keeps_the_old_folder_and_the_next_run_clears_its_leftovers(tmp_path):
    out = tmp_path / "out"
    build(out, "old")
    with pytest.raises(RuntimeError):
        build(out, "half", fail=True)
    assert (out / "data.txt").read_text() == "old" and names(tmp_path) == ["out", "out.tmp"]
    build(out, "new")
    assert (out / "data.txt").read_text() == "new" and names(tmp_path) == ["out"]


def test_a_kill_between_the_two_renames_leaves_the_old_folder_aside_and_the_next_run_restores_it(tmp_path, monkeypatch):
    """Where the atomic exchange is unavailable: old -> out.old, then out.tmp -> out."""
    out = tmp_path / "out"
    build(out, "old")
    monkeypatch.setattr(files, "_exchange", lambda a, b: False)
    real_replace, calls = os.replace, []

    def killed_after_the_first_rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise KeyboardInterrupt  # the kill
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", killed_after_the_first_rename)
    with pytest.raises(KeyboardInterrupt):
        build(out, "new")
    monkeypatch.setattr(files.os, "replace", real_replace)
    assert names(tmp_path) == ["out.old", "out.tmp"]  # the old folder is kept, never deleted first
    with pytest.raises(RuntimeError), atomic_dir(out):  # the next run puts it back before anything else
        assert (out / "data.txt").read_text() == "old"
        raise RuntimeError("stop here")
    build(out, "new")
    assert (out / "data.txt").read_text() == "new" and names(tmp_path) == ["out"]


def test_a_kill_after_the_exchange_leaves_the_new_folder_in_place(tmp_path, monkeypatch):
    out = tmp_path / "out"
    build(out, "old")

    real_rmtree = shutil.rmtree

    def killed_before_removing_the_old_folder(path, *args, **kwargs):
        if (path / "data.txt").exists():  # not the empty-leftover sweep before the build
            raise KeyboardInterrupt
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(files.shutil, "rmtree", killed_before_removing_the_old_folder)
    with pytest.raises(KeyboardInterrupt):
        build(out, "new")
    monkeypatch.undo()
    assert (out / "data.txt").read_text() == "new"  # the exchange was one step: never neither
    assert (tmp_path / "out.tmp/data.txt").read_text() == "old"
    build(out, "newer")
    assert names(tmp_path) == ["out"]


def test_stale_temp_files_of_killed_writes_are_removed_and_live_ones_kept(tmp_path):
    (tmp_path / "sub").mkdir()
    stale = [tmp_path / ".step-00000008.pt.k3j2.tmp", tmp_path / "sub" / ".ab12.json.x9.tmp"]
    fresh = tmp_path / "sub" / ".cd34.json.y8.tmp"
    kept = [tmp_path / "step-00000004.pt", tmp_path / "notes.tmp", tmp_path / "sub" / "ab12.json"]
    for path in [*stale, fresh, *kept]:
        path.write_text("x")
    for path in stale:
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    assert files.remove_stale_temps(tmp_path, older_than_seconds=600) == 2
    assert not any(p.exists() for p in stale) and fresh.exists() and all(p.exists() for p in kept)
    assert files.remove_stale_temps(tmp_path) == 1 and not fresh.exists()
