"""Atomic writes and JSONL reading/writing shared by all stages.

A final output is never appended to or half-written: data goes to a temp file in the same
folder and is moved into place with os.replace, which is atomic on POSIX. A killed process
leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any


class JsonlError(ValueError):
    """A JSONL line that cannot be decoded; names the file and line."""


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temp file beside `path`; on success fsync it and move it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a folder as `<path>.tmp/` and rename it to `path` when the block succeeds."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    yield tmp
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)


def dumps_record(record: Any) -> str:
    """One canonical JSON line: stable key order is left to the caller, unicode kept as is."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def write_jsonl(path: str | Path, records: Iterable[Any]) -> int:
    """Atomically write records, one JSON object per line; returns the count."""
    count = 0
    with atomic_write(path) as handle:
        for record in records:
            handle.write(dumps_record(record) + "\n")
            count += 1
    return count


def write_json(path: str | Path, obj: Any) -> None:
    """Atomically write pretty JSON (metrics files, manifests)."""
    with atomic_write(path) as handle:
        json.dump(obj, handle, ensure_ascii=False, indent=2, sort_keys=True)
        handle.write("\n")


@dataclass(frozen=True)
class JsonlLine:
    """One line of a JSONL file: the record, or why it could not be read."""

    lineno: int
    record: Any = None
    error: str | None = None  # "invalid_utf8" | "invalid_json" | None


def iter_jsonl_lines(path: str | Path) -> Iterator[JsonlLine]:
    """Yield every non-blank line, decoded when possible, with the reason when not.

    Reads bytes so one line of invalid UTF-8 costs that line only, not the whole file.
    """
    with open(path, "rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield JsonlLine(lineno, error="invalid_utf8")
                continue
            try:
                yield JsonlLine(lineno, record=json.loads(text))
            except json.JSONDecodeError:
                yield JsonlLine(lineno, error="invalid_json")


def read_jsonl(path: str | Path) -> Iterator[Any]:
    """Yield records; the first unreadable line raises JsonlError naming file and line."""
    for line in iter_jsonl_lines(path):
        if line.error:
            raise JsonlError(f"{path}:{line.lineno}: {line.error.replace('_', ' ')}")
        yield line.record
