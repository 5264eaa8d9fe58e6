"""Atomic writes and JSONL reading/writing shared by all stages.

A final output is never appended to or half-written: data goes to a temp file in the same
folder and is moved into place with os.replace, which is atomic on POSIX. A killed process
leaves either the old file or the new one, never a torn one. What a killed write leaves
behind (a `.<name>.<random>.tmp` file, a `<folder>.tmp/` or `<folder>.old/`) is cleaned by the
next run: `remove_stale_temps` for files, `atomic_dir` itself for folders.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

TEMP_FILE = re.compile(r"^\..+\.tmp$")  # atomic_write's temp names: .<name>.<random>.tmp


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


def remove_stale_temps(folder: str | Path, older_than_seconds: float = 0.0) -> int:
    """Delete atomic_write temp files under `folder` (recursively) that a killed write left,
    untouched for `older_than_seconds` (a positive age spares a writer that shares the folder
    and is still running); returns how many went."""
    removed, cutoff = 0, time.time() - older_than_seconds
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            if TEMP_FILE.match(name):
                with contextlib.suppress(FileNotFoundError):  # its writer finished meanwhile
                    if os.stat(path).st_mtime <= cutoff:
                        os.unlink(path)
                        removed += 1
    return removed


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a folder as `<path>.tmp/` and swap it in for `path` when the block succeeds.

    A reader finds the old folder or the new one at every instant: on Linux the two are
    exchanged in one renameat2(RENAME_EXCHANGE); elsewhere the old one is first renamed to
    `<path>.old/`, and a kill between the two renames is undone by the next call (`.old` back
    in place). Leftovers of a killed build (`.tmp`, `.old`) are removed by the next call.
    """
    path = Path(path)
    tmp, old = path.with_name(path.name + ".tmp"), path.with_name(path.name + ".old")
    if old.exists():
        if path.exists():
            shutil.rmtree(old)  # killed after the swap: the new folder is in place
        else:
            os.replace(old, path)  # killed between the renames: the old folder comes back
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    yield tmp
    if not path.exists():
        os.replace(tmp, path)
        return
    if _exchange(tmp, path):
        shutil.rmtree(tmp)  # now the old folder
        return
    os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where the C
    library or the filesystem cannot, so the caller falls back to two renames."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2  # <fcntl.h>, <linux/fs.h>
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


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
