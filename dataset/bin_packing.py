"""Pack tokenized records into fixed-length contexts: which record goes where, and the arrays.

Records (the encode format, dataset/token_files.py: flat ids + loss mask + offsets) are assigned
to contexts of T tokens by best-fit decreasing (longest first, each into the fullest context
that still has room), which packs near-optimally when short records are plentiful enough to
fill the gaps left by long ones (first- and best-fit decreasing use at most 11/9 OPT + O(1)
bins, D. S. Johnson 1973; on the default data 0.5% of the tokens are padding). The price is
that a context's records are no longer neighbours in the shuffled order; the context order
itself is shuffled with a seed, so batches still mix lengths and articles. Ties keep the input (shuffled) order.

A record longer than T is split into pieces of T tokens that overlap by one token: piece k
starts at k * (T - 1), so the token a piece ends on opens the next one and every next-token
target of the record is trained exactly once. Each piece restarts its positions at 0 and
attends only to itself, so the model learns a piece's tokens without the record's beginning
(for a chat record, later pieces lose the question): that is the trade-off against
`long_records: drop`, which loses the record instead. Records that cannot teach anything are
dropped with a reason: too_short (< 2 tokens: no next-token target), no_loss_tokens (no
target under the loss mask), too_long (with drop); a split piece without loss is dropped as
piece_no_loss_tokens.

Arrays of one split, C contexts of T tokens (what `fill_contexts` returns):
  tokens      (C, T) ids; pad_id after the last record of a context
  mask        (C, T) uint8, the token loss mask as tokenize wrote it; 0 on padding
  positions   (C, T) int32, 0 at the first token of every record (piece); the padding tail
              counts 0, 1, ... like one more record, the layout model.packing uses
  doc_ids     (C, T) int32, 0, 1, 2, ... per record in the context; -1 on padding
  targets     (C, T) the next token of the same record; 0 where there is none
  target_mask (C, T) uint8, 1 where targets[c, t] is a loss-bearing token of the same record
The last token of a record never gets the next record's first token as its target
(`next_token_targets`), the same rule as model.packing.record_targets.
Segments (S, 5) int64 say where each piece went: SEGMENT_COLUMNS.

Example:
  pieces, drops = plan_pieces(offsets, mask, 256, "split")
  segments = layout_segments(pieces, 256, seed=1944)
  arrays = fill_contexts(segments, ids, mask, offsets, 256, 0, n_contexts(segments))
  cu = context_cu_seqlens(arrays["doc_ids"][0])  # flash-attn varlen boundaries of context 0
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from typing import Literal

import numpy as np

SEGMENT_COLUMNS = ("context", "context_start", "record", "record_start", "length")
LongRecords = Literal["split", "drop"]
PackMode = Literal["packed", "padded"]
DROP_REASONS = ("too_short", "no_loss_tokens", "too_long", "piece_no_loss_tokens")


def piece_spans(length: int, context_length: int) -> list[tuple[int, int]]:
    """(start, length) pieces of a record: whole if it fits, else T-token pieces overlapping
    by one token, so each of the record's length - 1 targets falls in exactly one piece."""
    if length <= context_length:
        return [(0, length)]
    step = context_length - 1
    return [(start, min(context_length, length - start)) for start in range(0, length - 1, step)]


def loss_cumsum(mask: np.ndarray) -> np.ndarray:
    """cs[i] = mask[:i].sum(), so the loss tokens of ids[a:b] are cs[b] - cs[a]."""
    dtype = np.uint32 if len(mask) < 2**32 else np.int64  # half the RAM of int64 at real scale
    cs = np.zeros(len(mask) + 1, dtype=dtype)
    np.cumsum(mask, dtype=dtype, out=cs[1:])
    return cs


def plan_pieces(
    offsets: np.ndarray, mask: np.ndarray, context_length: int, long_records: LongRecords
) -> tuple[np.ndarray, Counter]:
    """What to pack: (P, 3) int64 rows (record, record_start, length), in record order, and
    the drop counts by reason (plus records_split / split_pieces)."""
    if context_length < 2:
        raise ValueError(f"context_length must be >= 2, got {context_length}")
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    cs = loss_cumsum(mask)
    counts: Counter = Counter(dict.fromkeys((*DROP_REASONS, "records_split", "split_pieces"), 0))
    short = lengths < 2
    # a record's targets are its tokens 1..L-1: loss tokens = mask over offsets[i]+1 .. offsets[i+1]
    starts = np.minimum(offsets[:-1] + 1, offsets[1:])
    no_loss = ~short & (cs[offsets[1:]].astype(np.int64) - cs[starts].astype(np.int64) == 0)
    long = ~short & ~no_loss & (lengths > context_length)
    counts["too_short"] = int(short.sum())
    counts["no_loss_tokens"] = int(no_loss.sum())
    whole = np.flatnonzero(~short & ~no_loss & ~long)
    rows = [np.stack([whole, np.zeros_like(whole), lengths[whole]], axis=1)]
    if long_records == "drop":
        counts["too_long"] = int(long.sum())
    else:  # few records are long: a Python loop over them is cheap
        pieces = []
        for record in np.flatnonzero(long).tolist():
            counts["records_split"] += 1
            for start, length in piece_spans(int(lengths[record]), context_length):
                begin = int(offsets[record]) + start
                if int(cs[begin + length]) - int(cs[begin + 1]) == 0:
                    counts["piece_no_loss_tokens"] += 1
                    continue
                counts["split_pieces"] += 1
                pieces.append((record, start, length))
        rows.append(np.asarray(pieces, dtype=np.int64).reshape(-1, 3))
    table = np.concatenate(rows).astype(np.int64)
    return table[np.lexsort((table[:, 1], table[:, 0]))], counts


def best_fit_decreasing(lengths: np.ndarray, capacity: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin index and start offset of each item; every length must be in 1..capacity.

    Longest first (a stable sort: ties in input order), each into the bin with the least
    room that still fits it, else a new bin. Bins are kept by remaining room (at most
    capacity + 1 distinct values), so each placement is a bisect: O(n log T).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(lengths) and (lengths.min() < 1 or lengths.max() > capacity):
        raise ValueError(f"item lengths must be within 1..{capacity}")
    bins = np.empty(len(lengths), dtype=np.int64)
    starts = np.empty(len(lengths), dtype=np.int64)
    by_room: defaultdict[int, list[int]] = defaultdict(list)  # room left -> bins with that room
    rooms: list[int] = []  # sorted distinct rooms that some bin has
    filled: list[int] = []  # tokens in each bin
    for item in np.argsort(-lengths, kind="stable").tolist():
        need = int(lengths[item])
        k = bisect.bisect_left(rooms, need)
        if k < len(rooms):
            room = rooms[k]
            target = by_room[room].pop()
            if not by_room[room]:
                del rooms[k]
        else:
            room, target = capacity, len(filled)
            filled.append(0)
        bins[item], starts[item] = target, filled[target]
        filled[target] += need
        if room > need:
            if not by_room[room - need]:
                bisect.insort(rooms, room - need)
            by_room[room - need].append(target)
    return bins, starts


def layout_segments(pieces: np.ndarray, context_length: int, seed: int, mode: PackMode = "packed") -> np.ndarray:
    """Assign pieces to contexts, shuffle the contexts' order; (S, 5) SEGMENT_COLUMNS rows
    sorted by context, then by place in the context. `padded` puts each piece alone in its
    context, the rest padding (the seed project's first layout, kept to compare against)."""
    if len(pieces) == 0:
        return np.zeros((0, len(SEGMENT_COLUMNS)), dtype=np.int64)
    if mode == "padded":
        bins, starts = np.arange(len(pieces), dtype=np.int64), np.zeros(len(pieces), dtype=np.int64)
    else:
        bins, starts = best_fit_decreasing(pieces[:, 2], context_length)
    order = np.random.default_rng(seed).permutation(int(bins.max()) + 1)  # bin b becomes context order[b]
    segments = np.column_stack([order[bins], starts, pieces]).astype(np.int64)
    return segments[np.lexsort((segments[:, 1], segments[:, 0]))]


def n_contexts(segments: np.ndarray) -> int:
    return int(segments[-1, 0]) + 1 if len(segments) else 0


def next_token_targets(tokens: np.ndarray, mask: np.ndarray, doc_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """targets[c, t] = tokens[c, t + 1] and target_mask[c, t] = mask[c, t + 1] when both are
    in the same record; else 0 and 0 (as model.packing.record_targets). So a record's last
    token is never trained to predict the next record's first token, and padding never counts."""
    same = np.zeros(doc_ids.shape, dtype=bool)
    same[:, :-1] = (doc_ids[:, 1:] == doc_ids[:, :-1]) & (doc_ids[:, :-1] >= 0)
    targets = np.zeros_like(tokens)
    targets[:, :-1] = np.where(same[:, :-1], tokens[:, 1:], 0)
    target_mask = np.zeros(mask.shape, dtype=np.uint8)
    target_mask[:, :-1] = same[:, :-1] & (mask[:, 1:] > 0)
    return targets, target_mask


def fill_contexts(
    segments: np.ndarray,
    ids: np.ndarray,
    mask: np.ndarray,
    offsets: np.ndarray,
    context_length: int,
    first: int,
    count: int,
    pad_id: int = 0,
) -> dict[str, np.ndarray]:
    """The arrays (module docstring) of contexts first .. first + count - 1, gathered in
    one vectorised pass: memory ~ count * T, so callers go chunk by chunk."""
    width = context_length
    lo, hi = np.searchsorted(segments[:, 0], [first, first + count])
    seg = segments[lo:hi]
    context, context_start, record, record_start, length = (seg[:, i] for i in range(5))
    # token k of every segment: its flat destination in the chunk and its source in ids
    seg_first = np.cumsum(length) - length
    k = np.arange(int(length.sum()), dtype=np.int64) - np.repeat(seg_first, length)
    dest = np.repeat((context - first) * width + context_start, length) + k
    src = np.repeat(np.asarray(offsets, dtype=np.int64)[record] + record_start, length) + k
    # index of each segment inside its context: 0, 1, 2, ...
    local = np.arange(len(seg)) - np.searchsorted(context, context, side="left")

    used = np.bincount(context - first, weights=length, minlength=count).astype(np.int64)
    tokens = np.full(count * width, pad_id, dtype=ids.dtype)
    tokens[dest] = ids[src]
    token_mask = np.zeros(count * width, dtype=np.uint8)
    token_mask[dest] = mask[src]
    positions = (np.arange(width)[None, :] - used[:, None]).reshape(-1).astype(np.int32)  # padding tail: 0, 1, ...
    positions[dest] = k
    doc_ids = np.full(count * width, -1, dtype=np.int32)
    doc_ids[dest] = np.repeat(local, length)
    arrays = {"tokens": tokens, "mask": token_mask, "positions": positions, "doc_ids": doc_ids}
    arrays = {name: a.reshape(count, width) for name, a in arrays.items()}
    arrays["targets"], arrays["target_mask"] = next_token_targets(arrays["tokens"], arrays["mask"], arrays["doc_ids"])
    return arrays


def context_cu_seqlens(doc_ids_row: np.ndarray) -> np.ndarray:
    """int32 [0, l1, l1+l2, ..., n_tokens] of one context's records, padding left out: what
    flash_attn_varlen_func takes for that row alone. For a whole (B, T) batch, padding
    included, use model.packing.cu_seqlens_from_positions(positions)."""
    doc_ids_row = np.asarray(doc_ids_row)
    real = int((doc_ids_row >= 0).sum())
    change = np.flatnonzero(doc_ids_row[1:real] != doc_ids_row[: real - 1]) + 1
    return np.concatenate([[0], change, [real]]).astype(np.int32) if real else np.zeros(1, dtype=np.int32)
