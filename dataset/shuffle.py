"""Sharded file-based shuffle of JSONL lines, memory bounded by one shard.

Pass 1 streams the inputs (several files, concatenated logically) and sends every line to one
of `shards` files chosen uniformly at random. Pass 2 loads one shard at a time, permutes its
lines and appends them to the output. Every record lands in a uniformly random shard and then
at a uniformly random place inside it, so the result is a uniform random permutation (up to
the shard-size fluctuation), the same argument as the two-pass shuffle in
https://blog.janestreet.com/how-to-shuffle-a-big-dataset/ — while RAM holds only the pass-1
write buffers (`buffer_mb`) or one shard, never the dataset.

Lines are opaque bytes: the shuffle never parses JSON. A last line without its newline gets
one; blank lines are dropped and counted. The spread metric reads each record's "article"
with a byte-level regex (no json.loads), so it costs little on a large input.

Pass 1 keeps no shard file open: lines are buffered per shard in RAM and, once `buffer_mb`
is buffered in total, every non-empty buffer is appended to its shard with one
open-append-close. That avoids holding 1000 descriptors (a common `ulimit -n` is 1024) and
makes few large writes instead of many small ones.

Crash safety: all work happens in `<out>.tmp/` (shards and the output part file); the part
file is fsynced and moved over `out` with os.replace, then the work folder is removed. A run
killed at any point (kill -9 included) leaves `out` as it was (absent on a first run), and the
next run deletes the stale work folder first, then redoes both passes: same inputs and
params give byte-identical output whatever happened before.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.random import default_rng

from common.params import ParamsError
from common.progress import progress

READ_CHUNK = 1 << 20  # bytes per readlines() batch in pass 1; fixed so shard draws are reproducible
# Streams of the seed: default_rng([seed, 0]) would equal default_rng(seed) (SeedSequence pads
# with zeros), so pass 1 and shard 0 of pass 2 would share draws without a stream number.
SCATTER_STREAM, PERMUTE_STREAM, CHUNK_STREAM = 0, 1, 2
# The value of the first "article" key, still JSON-escaped (equality is all the metric needs).
ARTICLE = re.compile(rb'"article"\s*:\s*"((?:[^"\\]|\\.)*)"')


class ShuffleError(ValueError):
    """Input the shuffle cannot use (missing file, no records)."""


@dataclass(frozen=True)
class ShuffleParams:
    shards: int  # pass-1 shard files; RAM in pass 2 is about input_size / shards
    seed: int
    buffer_mb: int  # pass-1 write buffer, all shards together; bounds pass-1 RAM
    mode: Literal["records", "chunks"]  # records: sharded shuffle | chunks: shuffle runs of chunk_records
    chunk_records: int  # mode chunks: consecutive records kept together


def check_params(params: ShuffleParams, where: str) -> None:
    if params.shards < 1 or params.buffer_mb < 1:
        raise ParamsError(f"{where}:shuffle: shards and buffer_mb must be >= 1")
    if params.seed < 0:  # random.Random takes it, but numpy's generators refuse it mid-run
        raise ParamsError(f"{where}:shuffle.seed: must be >= 0, got {params.seed}")
    if params.mode not in ("records", "chunks"):
        raise ParamsError(f"{where}:shuffle.mode: must be records or chunks, got {params.mode!r}")
    if params.chunk_records < 1:
        raise ParamsError(f"{where}:shuffle.chunk_records: must be >= 1, got {params.chunk_records}")


def read_line_batches(paths: Iterable[Path], chunk_bytes: int = READ_CHUNK) -> Iterator[list[bytes]]:
    """Batches of lines, each ending in b"\\n", file after file; blank lines come as b"".

    A file's missing final newline is added, so its last line never runs into the next
    file's first line. Only b"\\n" ends a line (binary readlines), as in pass 2.
    """
    for path in paths:
        with open(path, "rb") as handle:
            while lines := handle.readlines(chunk_bytes):
                if not lines[-1].endswith(b"\n"):
                    lines[-1] += b"\n"
                yield [line if line.strip() else b"" for line in lines]


def scatter(
    batches: Iterable[list[bytes]], shard_dir: Path, params: ShuffleParams
) -> tuple[np.ndarray, np.ndarray, int]:
    """Pass 1: append each line to a uniformly random shard file under `shard_dir`.

    Returns per-shard record counts, per-shard byte counts and the number of blank lines.
    """
    rng = default_rng([params.seed, SCATTER_STREAM])
    records = np.zeros(params.shards, dtype=np.int64)
    sizes = np.zeros(params.shards, dtype=np.int64)
    buffers: list[list[bytes]] = [[] for _ in range(params.shards)]
    buffered = blank = 0
    limit = params.buffer_mb << 20
    for lines in batches:
        kept = [line for line in lines if line]
        blank += len(lines) - len(kept)
        targets = rng.integers(params.shards, size=len(kept))
        lengths = np.fromiter(map(len, kept), dtype=np.int64, count=len(kept))
        records += np.bincount(targets, minlength=params.shards)
        sizes += np.bincount(targets, weights=lengths, minlength=params.shards).astype(np.int64)
        for line, target in zip(kept, targets.tolist(), strict=True):
            buffers[target].append(line)
        buffered += int(lengths.sum())
        if buffered >= limit:
            flush_buffers(buffers, shard_dir)
            buffered = 0
    flush_buffers(buffers, shard_dir)
    return records, sizes, blank


def flush_buffers(buffers: list[list[bytes]], shard_dir: Path) -> None:
    for index, lines in enumerate(buffers):
        if lines:
            with open(shard_path(shard_dir, index), "ab") as handle:
                handle.write(b"".join(lines))
            lines.clear()


def shard_path(shard_dir: Path, index: int) -> Path:
    return shard_dir / f"{index:06d}"


def shuffle_lines(lines: list[bytes], seed: int, shard: int) -> list[bytes]:
    """A seeded permutation of one shard; the shard index keys the stream, so shards are
    independent of each other and of the order they are visited in."""
    order = default_rng([seed, PERMUTE_STREAM, shard]).permutation(len(lines))
    return [lines[i] for i in order.tolist()]


class Spread:
    """Adjacent same-article records in a stream, and what a uniform shuffle would give.

    For a uniform random permutation of n records, n_a of them from article a, each of the n-1
    neighbour pairs is same-article with probability sum n_a (n_a - 1) / (n (n - 1)), so the
    expected count is sum n_a (n_a - 1) / n. The two-pass shuffle has the same expectation
    (a shard's article counts are multinomial), so observed/expected should sit near 1; an
    input grouped by article is far above it. Records without an "article" never match.
    """

    def __init__(self) -> None:
        self.ids: dict[bytes, int] = {}  # article -> dense id; grows with articles, not records
        self.counts = np.zeros(0, dtype=np.int64)
        self.adjacent = 0
        self.max_run = 0
        self._previous = -1  # article id of the last record seen (-1: none)
        self._run = 0  # length of the same-article run that ends at the last record

    def article_id(self, line: bytes) -> int:
        match = ARTICLE.search(line)
        return self.ids.setdefault(match.group(1), len(self.ids)) if match else -1

    def add(self, lines: list[bytes]) -> None:
        if not lines:
            return
        ids = np.fromiter(map(self.article_id, lines), dtype=np.int64, count=len(lines))
        self.counts = np.pad(self.counts, (0, len(self.ids) - len(self.counts)))
        self.counts += np.bincount(ids[ids >= 0], minlength=len(self.counts))
        same = (ids == np.concatenate(([self._previous], ids[:-1]))) & (ids >= 0)
        self.adjacent += int(same.sum())
        # A run starts wherever a record differs from its predecessor; the first run of this
        # batch continues the run carried over from the previous batch.
        starts = np.flatnonzero(~same)
        if starts.size == 0:
            self._run += len(ids)
        else:
            lengths = np.diff(np.append(starts, len(ids)))
            self.max_run = max(self.max_run, self._run + int(starts[0]), int(lengths.max()))
            self._run = int(lengths[-1])
        self.max_run = max(self.max_run, self._run)
        self._previous = int(ids[-1])

    def expected_adjacent(self) -> float:
        n = int(self.counts.sum())
        return float((self.counts * (self.counts - 1)).sum() / n) if n else 0.0


def shuffle_files(inputs: list[Path], out: Path, params: ShuffleParams) -> dict:
    """Both passes in `<out>.tmp/`, then the atomic move; returns the metrics. A missing
    input raises ShuffleError before anything is touched."""
    missing = [str(p) for p in inputs if not p.is_file()]
    if missing:
        raise ShuffleError(f"input not found: {', '.join(missing)}")
    work = out.with_name(out.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)  # a killed run's leftovers: always start clean
    try:
        if params.mode == "chunks":
            return shuffle_chunks_in(work, inputs, out, params)
        return shuffle_in(work, inputs, out, params)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # after success or a Python-level error


def shuffle_in(work: Path, inputs: list[Path], out: Path, params: ShuffleParams) -> dict:
    shard_dir = work / "shards"
    shard_dir.mkdir(parents=True)
    total_bytes = sum(p.stat().st_size for p in inputs)
    with progress(total=total_bytes, unit="B", unit_scale=True, desc="shuffle pass 1", mininterval=2) as bar:

        def batches() -> Iterator[list[bytes]]:
            for lines in read_line_batches(inputs):
                bar.update(sum(map(len, lines)))
                yield lines

        records, sizes, blank = scatter(batches(), shard_dir, params)
    n_records = int(records.sum())
    if n_records == 0:
        raise ShuffleError(f"no records in {', '.join(map(str, inputs))} (empty input)")

    spread = Spread()
    part = work / "output.part"
    with open(part, "wb") as handle:
        for index in progress(range(params.shards), desc="shuffle pass 2", unit="shard", mininterval=2):
            if not records[index]:
                continue
            path = shard_path(shard_dir, index)
            # split on b"\n" only: bytes.splitlines would also cut at a stray b"\r" in a line
            lines = shuffle_lines(path.read_bytes().split(b"\n")[:-1], params.seed, index)
            path.unlink()  # frees disk as we go: peak disk is input + output, not 2x input
            spread.add(lines)
            handle.write(b"\n".join(lines))
            handle.write(b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(part, out)

    expected = spread.expected_adjacent()
    return {
        "records": n_records,
        "blank_lines_skipped": blank,
        "mode": "records",
        "shards": params.shards,
        "shards_used": int((records > 0).sum()),
        "largest_shard_bytes": int(sizes.max()),
        "largest_shard_records": int(records.max()),
        "articles": len(spread.ids),
        "adjacent_same_article": spread.adjacent,
        "adjacent_same_article_expected": round(expected, 2),
        "adjacent_same_article_ratio": round(spread.adjacent / expected, 4) if expected else None,
        "max_same_article_run": spread.max_run,
    }


def chunk_order(n_chunks: int, seed: int) -> list[int]:
    return default_rng([seed, CHUNK_STREAM]).permutation(n_chunks).tolist()


def shuffle_chunks_in(work: Path, inputs: list[Path], out: Path, params: ShuffleParams) -> dict:
    """Mode chunks: the input cut into runs of `chunk_records` consecutive records, only the
    runs' order shuffled, so an article's records stay together as the inputs had them (the
    seed project's first shuffle, kept to compare). Pass 1 copies the lines (blank ones
    dropped) into one work file and notes each chunk's byte offset; pass 2 copies the chunks
    to the output in a seeded order. RAM: one offset per chunk and one chunk's lines."""
    work.mkdir(parents=True)
    joined = work / "joined"
    starts, n_records, blank = [0], 0, 0
    with open(joined, "wb") as handle:
        for lines in read_line_batches(inputs):
            for line in lines:
                if not line:
                    blank += 1
                    continue
                handle.write(line)
                n_records += 1
                if n_records % params.chunk_records == 0:
                    starts.append(handle.tell())
        end = handle.tell()
    if n_records == 0:
        raise ShuffleError(f"no records in {', '.join(map(str, inputs))} (empty input)")
    if starts[-1] != end:
        starts.append(end)  # the last, shorter chunk
    spread = Spread()
    part = work / "output.part"
    with open(joined, "rb") as source, open(part, "wb") as handle:
        order = chunk_order(len(starts) - 1, params.seed)
        for chunk in progress(order, desc="shuffle chunks", unit="chunk", mininterval=2):
            source.seek(starts[chunk])
            data = source.read(starts[chunk + 1] - starts[chunk])
            spread.add(data.split(b"\n")[:-1])
            handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(part, out)
    expected = spread.expected_adjacent()
    return {
        "records": n_records,
        "blank_lines_skipped": blank,
        "mode": "chunks",
        "chunk_records": params.chunk_records,
        "chunks": len(starts) - 1,
        "articles": len(spread.ids),
        "adjacent_same_article": spread.adjacent,
        "adjacent_same_article_expected": round(expected, 2),
        "adjacent_same_article_ratio": round(spread.adjacent / expected, 4) if expected else None,
        "max_same_article_run": spread.max_run,
    }
