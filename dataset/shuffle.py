"""Sharded file-based shuffle of JSONL lines, memory bounded by one shard.

Pass 1 streams the inputs (several files, concatenated logically) and sends every line to one
of `shards` shards chosen uniformly at random. Pass 2 loads one shard at a time, permutes its
lines and appends them to the output. Every record lands in a uniformly random shard and then
at a uniformly random place inside it, so the result is a uniform random permutation (up to
the shard-size fluctuation), the same argument as the two-pass shuffle in
https://blog.janestreet.com/how-to-shuffle-a-big-dataset/ — while RAM holds only the pass-1
write buffer (`buffer_mb`) or one shard, never the dataset.

Lines are opaque bytes: the shuffle never parses JSON. A last line without its newline gets
one; blank lines are dropped and counted. The spread metric (dataset/spread.py) reads each
record's "article" with a byte-level regex.

Speed: per line, Python only makes a memoryview (no copy) and, in pass 2, runs the article
regex on it in place; numpy finds the line ends, draws the shards and sorts by them; joins
and writes move whole buffers. Pass 1 reads 1 MB chunks of whole lines. Once `buffer_mb` is
buffered, the lines are sorted by shard (a stable argsort, so a shard keeps input order) and
written as one run to SPILL_FILES spill files, each holding a contiguous range of shards: a
shard's bytes in a run are one segment, whose offset RAM keeps (16 bytes per shard and run).
Pass 2 reads a shard with one pread per run and deletes a spill file once its shards are
done, so peak disk stays about input + output. A file per shard (1000 of them, appended to
with an open-append-close at each flush) spent a third of pass 1 opening and creating files,
and holding them open would meet a common `ulimit -n` of 1024.

Where the time goes (perf, 500 MB bench input, 2-core VM): about 36% of the run is the
kernel's copy into page-cache pages inside write() (copy_folio_from_iter_atomic), for the
spill and the output (1 GB). On this VM a page never touched before is slow: 500 MB written to
a new file took 0.8-1.7 s, the same into pages just freed by an unlink 0.11 s, and reading it
back 0.05 s, so pass-1 spill writes and output writes dominate, not Python. Tried and dropped:
writes in a background thread (no gain with the cores busy, often slower, +15 MB RSS);
glibc mmap/trim thresholds raised (minor faults 105k -> 16k, wall time not better); one
finditer over a shard instead of a search per line (no faster).

Crash safety: all work happens in `<out>.tmp/` (spill files and the output part file); the
part file is fsynced and moved over `out` with os.replace, then the work folder is removed. A
run killed at any point (kill -9 included) leaves `out` as it was (absent on a first run), and
the next run deletes the stale work folder first, then redoes both passes: same inputs and
params give byte-identical output whatever happened before.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
from numpy.random import default_rng

from common.params import ParamsError
from common.progress import progress
from dataset.spread import ARTICLE, Spread

# Bytes per pass-1 chunk, then completed to the next line end: exactly the batches that
# readlines(READ_CHUNK) gave (its last line crosses the hint), so the shard draws, and the
# output, stay those of the line-by-line version. Fixed, so shard draws are reproducible.
READ_CHUNK = 1 << 20
WRITEBACK_BYTES = 16 << 20  # output bytes between two writeback hints (start_writeback)
SPILL_FILES = 32  # pass-1 files; a finished one is deleted, so extra disk is ~1/32 of the data
# Streams of the seed: default_rng([seed, 0]) would equal default_rng(seed) (SeedSequence pads
# with zeros), so pass 1 and shard 0 of pass 2 would share draws without a stream number.
SCATTER_STREAM, PERMUTE_STREAM, CHUNK_STREAM = 0, 1, 2
NEWLINE = ord("\n")
# What bytes.strip() removes: a line made only of these is blank.
WHITESPACE = np.zeros(256, dtype=bool)
WHITESPACE[list(b" \t\n\r\x0b\x0c")] = True


class ShuffleError(ValueError):
    """Input the shuffle cannot use (missing file, no records)."""


@dataclass(frozen=True)
class ShuffleParams:
    shards: int  # pass-1 shards; RAM in pass 2 is about input_size / shards
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


def read_chunks(paths: Iterable[Path], chunk_bytes: int = READ_CHUNK) -> Iterator[bytes]:
    """The inputs, file after file, as chunks of whole lines, each ending in b"\\n".

    A file's missing final newline is added, so its last line never runs into the next
    file's first line. Only b"\\n" ends a line, as in pass 2.
    """
    for path in paths:
        with open(path, "rb") as handle:
            while block := handle.read(chunk_bytes):
                chunk = block + handle.readline()
                yield chunk if chunk.endswith(b"\n") else chunk + b"\n"


def newline_spans(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (past its b"\\n") of each line of `data`, which ends in b"\\n"."""
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == NEWLINE) + 1
    return np.concatenate(([0], ends[:-1])), ends


def join_spans(data: bytes, starts: np.ndarray, ends: np.ndarray) -> bytes:
    """The spans of `data`, in the order given, back to back (one copy, no bytes per line)."""
    view = memoryview(data)
    return b"".join([view[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)])


def line_spans(chunk: bytes) -> tuple[np.ndarray, np.ndarray, int]:
    """Start and end (past its b"\\n") of each non-blank line of a chunk, and the blank count."""
    starts, ends = newline_spans(chunk)
    data = np.frombuffer(chunk, dtype=np.uint8)
    # A blank line (empty or whitespace only) starts with whitespace; JSONL lines start with
    # "{", so only these few candidates are checked one by one.
    candidates = np.flatnonzero(WHITESPACE[data[starts]]).tolist()
    blank = [i for i in candidates if not chunk[starts[i] : ends[i]].strip()]
    if blank:
        keep = np.ones(len(ends), dtype=bool)
        keep[blank] = False
        starts, ends = starts[keep], ends[keep]
    return starts, ends, len(blank)


class Spill:
    """Pass-1 output: the shards, run after run, in SPILL_FILES append-only files.

    File g holds the contiguous range of shards bounds[g]..bounds[g+1]-1. A run (one flushed
    buffer) appends to each file its shards' lines, shard after shard, so shard i's bytes in
    run r are one segment: at offsets[r][i], lengths[r][i] long.
    """

    def __init__(self, folder: Path, shards: int) -> None:
        self.folder = folder
        self.shards = shards
        files = min(SPILL_FILES, shards)
        self.bounds = np.arange(files + 1) * shards // files
        self.file_of = np.repeat(np.arange(files), np.diff(self.bounds))  # shard -> file
        self.sizes = np.zeros(files, dtype=np.int64)  # bytes written to each file so far
        self.offsets: list[np.ndarray] = []
        self.lengths: list[np.ndarray] = []
        folder.mkdir(parents=True)
        self.handles = [open(self.path(g), "wb") for g in range(files)]  # noqa: SIM115 (closed in close())

    def path(self, index: int) -> Path:
        return self.folder / f"{index:03d}"

    def write_run(
        self, chunks: list[bytes], starts: list[np.ndarray], ends: list[np.ndarray], shard_of: list[np.ndarray]
    ) -> None:
        """Append one run: line j of chunks[c], chunks[c][starts[c][j]:ends[c][j]], goes to shard
        shard_of[c][j]. The line views are made here, a file's worth at a time: made per chunk
        and kept until the flush, the buffer's 40,000 views took 2-3x as long to make and join."""
        chunk_of = np.repeat(np.arange(len(chunks)), [len(s) for s in starts])
        starts, ends, shards = (np.concatenate(a) for a in (starts, ends, shard_of))
        # by shard, input order within a shard; numpy sorts 8- and 16-bit keys stably by radix
        order = np.argsort(shards.astype(np.min_scalar_type(self.shards - 1)), kind="stable")
        shard_bytes = np.bincount(shards, weights=ends - starts, minlength=self.shards).astype(np.int64)
        before = np.concatenate(([0], np.cumsum(shard_bytes)))  # run bytes before each shard
        first = self.bounds[self.file_of]  # the first shard of each shard's file
        self.offsets.append(self.sizes[self.file_of] + before[:-1] - before[first])
        self.lengths.append(shard_bytes)
        self.sizes += before[self.bounds[1:]] - before[self.bounds[:-1]]
        line_bounds = np.concatenate(([0], np.cumsum(np.bincount(shards, minlength=self.shards))))[self.bounds]
        views = [memoryview(chunk) for chunk in chunks]
        for g, handle in enumerate(self.handles):
            lines = order[line_bounds[g] : line_bounds[g + 1]]
            spans = zip(chunk_of[lines].tolist(), starts[lines].tolist(), ends[lines].tolist(), strict=True)
            handle.write(b"".join([views[c][s:e] for c, s, e in spans]))

    def close(self) -> None:
        for handle in self.handles:
            handle.close()

    def read_shards(self) -> Iterator[tuple[int, bytes]]:
        """(index, bytes) of every non-empty shard in order; a file is deleted once read."""
        offsets = np.stack(self.offsets) if self.offsets else np.zeros((0, self.shards), dtype=np.int64)
        lengths = np.stack(self.lengths) if self.lengths else offsets
        for g in range(len(self.handles)):
            with open(self.path(g), "rb", buffering=0) as handle:
                fd = handle.fileno()
                for shard in range(self.bounds[g], self.bounds[g + 1]):
                    pieces = zip(offsets[:, shard].tolist(), lengths[:, shard].tolist(), strict=True)
                    data = b"".join([os.pread(fd, size, offset) for offset, size in pieces if size])
                    if data:
                        yield shard, data
            self.path(g).unlink()  # frees disk as we go: peak disk is input + output (+1/32)


def scatter(chunks: Iterable[bytes], spill: Spill, params: ShuffleParams) -> tuple[np.ndarray, np.ndarray, int]:
    """Pass 1: send each line to a uniformly random shard of `spill`.

    Returns per-shard record counts, per-shard byte counts and the number of blank lines.
    """
    rng = default_rng([params.seed, SCATTER_STREAM])
    records = np.zeros(params.shards, dtype=np.int64)
    sizes = np.zeros(params.shards, dtype=np.int64)
    pending: tuple[list, ...] = ([], [], [], [])  # chunks, line starts, line ends, shards
    buffered = blank = 0
    limit = params.buffer_mb << 20
    for chunk in chunks:
        starts, ends, skipped = line_spans(chunk)
        blank += skipped
        shard_of = rng.integers(params.shards, size=len(starts))
        if len(starts):
            for queue, item in zip(pending, (chunk, starts, ends, shard_of), strict=True):
                queue.append(item)
            buffered += len(chunk)  # what RAM holds, blank lines included
        records += np.bincount(shard_of, minlength=params.shards)
        sizes += np.bincount(shard_of, weights=ends - starts, minlength=params.shards).astype(np.int64)
        if buffered >= limit:
            spill.write_run(*pending)
            for queue in pending:
                queue.clear()
            buffered = 0
    if buffered:
        spill.write_run(*pending)
    return records, sizes, blank


def shard_order(n_lines: int, seed: int, shard: int) -> np.ndarray:
    """A seeded permutation of one shard's lines; the shard index keys the stream, so shards
    are independent of each other and of the order they are visited in."""
    return default_rng([seed, PERMUTE_STREAM, shard]).permutation(n_lines)


def shuffle_shard(data: bytes, index: int, seed: int, spread: Spread) -> bytes:
    """Pass 2 for one shard: its lines permuted, their articles counted into `spread`.

    The lines stay spans of `data` (splitting into bytes objects took twice as long); the
    regex reads each span in place (pos, endpos, without its b"\\n") and only the join copies.
    """
    starts, ends = newline_spans(data)
    found = map(ARTICLE.search, repeat(data), starts.tolist(), (ends - 1).tolist())
    order = shard_order(len(ends), seed, index)
    spread.add_ids(spread.article_ids(found)[order])
    return join_spans(data, starts[order], ends[order])


def start_writeback(handle: BinaryIO, since: int) -> int:
    """Have the kernel start writing the output from byte `since` to disk now, so the fsync at
    the end waits for the last few MB, not the whole output (the disk writes while pass 2
    runs). Returns the new mark. On Linux, POSIX_FADV_DONTNEED starts the writeback of a range
    and drops none of its dirty pages (PostgreSQL's pg_flush_data falls back to it as its
    flush hint); where posix_fadvise is missing this does nothing."""
    end = handle.tell()
    if end - since < WRITEBACK_BYTES or not hasattr(os, "posix_fadvise"):
        return since
    handle.flush()
    os.posix_fadvise(handle.fileno(), since, end - since, os.POSIX_FADV_DONTNEED)
    return end


def shuffle_files(inputs: list[Path], out: Path, params: ShuffleParams) -> dict:
    """Both passes in `<out>.tmp/`, then the atomic move; returns the metrics. A missing
    input raises ShuffleError before anything is touched."""
    missing = [str(p) for p in inputs if not p.is_file()]
    if missing:
        raise ShuffleError(f"input not found: {', '.join(missing)}")
    work = out.with_name(out.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)  # a killed run's leftovers: always start clean
    try:
        with collector_paused():
            if params.mode == "chunks":
                return shuffle_chunks_in(work, inputs, out, params)
            return shuffle_in(work, inputs, out, params)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # after success or a Python-level error


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off: the shuffle makes millions of short-lived objects that
    form no cycles (line views, regex matches), and the collector's passes over them took
    3% of the run."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def shuffle_in(work: Path, inputs: list[Path], out: Path, params: ShuffleParams) -> dict:
    spill = Spill(work / "shards", params.shards)
    total_bytes = sum(p.stat().st_size for p in inputs)
    with progress(total=total_bytes, unit="B", unit_scale=True, desc="shuffle pass 1", mininterval=2) as bar:

        def chunks() -> Iterator[bytes]:
            for chunk in read_chunks(inputs):
                bar.update(len(chunk))
                yield chunk

        try:
            records, sizes, blank = scatter(chunks(), spill, params)
        finally:
            spill.close()
    n_records = int(records.sum())
    if n_records == 0:
        raise ShuffleError(f"no records in {', '.join(map(str, inputs))} (empty input)")

    spread = Spread()
    part = work / "output.part"
    shards_used = int((records > 0).sum())
    with open(part, "wb") as handle:
        written = 0
        for index, data in progress(
            spill.read_shards(), total=shards_used, desc="shuffle pass 2", unit="shard", mininterval=2
        ):
            handle.write(shuffle_shard(data, index, params.seed, spread))
            written = start_writeback(handle, written)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(part, out)
    return {
        "records": n_records,
        "blank_lines_skipped": blank,
        "mode": "records",
        "shards": params.shards,
        "shards_used": shards_used,
        "largest_shard_bytes": int(sizes.max()),
        "largest_shard_records": int(records.max()),
        **spread.metrics(),
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
    every = params.chunk_records
    boundaries = [np.zeros(1, dtype=np.int64)]  # byte offsets in `joined` where chunks start
    n_records = blank = end = 0
    with open(joined, "wb") as handle:
        for chunk in read_chunks(inputs):
            starts, ends, skipped = line_spans(chunk)
            blank += skipped
            if skipped:
                chunk = join_spans(chunk, starts, ends)
            handle.write(chunk)
            # a chunk ends after record number k * every; line j here is record n_records + j + 1
            record_ends = end + np.cumsum(ends - starts)
            boundaries.append(record_ends[(-n_records - 1) % every :: every])
            n_records += len(starts)
            end += len(chunk)
    if n_records == 0:
        raise ShuffleError(f"no records in {', '.join(map(str, inputs))} (empty input)")
    offsets = np.concatenate(boundaries).tolist()
    if offsets[-1] != end:
        offsets.append(end)  # the last, shorter chunk
    spread = Spread()
    part = work / "output.part"
    with open(joined, "rb") as source, open(part, "wb") as handle:
        order = chunk_order(len(offsets) - 1, params.seed)
        written = 0
        for chunk in progress(order, desc="shuffle chunks", unit="chunk", mininterval=2):
            source.seek(offsets[chunk])
            data = source.read(offsets[chunk + 1] - offsets[chunk])
            spread.add(data.split(b"\n")[:-1])
            handle.write(data)
            written = start_writeback(handle, written)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(part, out)
    return {
        "records": n_records,
        "blank_lines_skipped": blank,
        "mode": "chunks",
        "chunk_records": params.chunk_records,
        "chunks": len(offsets) - 1,
        **spread.metrics(),
    }
