"""Packing a tokens folder's splits into fixed-length contexts: the pack stage's logic.

Records are assigned to contexts by best-fit decreasing (dataset/bin_packing.py), records
longer than a context split into overlapping pieces or dropped (`long_records`), and the
arrays are filled chunk by chunk into the packed format (dataset/packed_files.py). Records
that cannot be packed are counted by reason (common/reasons.py): too_short, no_loss_tokens,
too_long, piece_no_loss_tokens; every reason is listed, 0 when none was dropped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.params import ParamsError
from common.progress import progress
from common.reasons import Drops
from dataset import token_files
from dataset.bin_packing import (
    DROP_REASONS,
    LongRecords,
    PackMode,
    fill_contexts,
    layout_segments,
    n_contexts,
    plan_pieces,
)
from dataset.packed_files import PackedSplitWriter
from dataset.token_files import load_split

CHUNK_TOKENS = 1 << 22  # tokens filled per step: bounds the gather's index arrays (~100 MB)


class PackError(ValueError):
    """Token arrays the stage cannot pack; the message names the file."""


@dataclass(frozen=True)
class PackParams:
    context_length: int  # tokens per context; must equal the model variant's context_length
    long_records: LongRecords  # split | drop, for records longer than a context
    seed: int  # order of the contexts
    mode: PackMode  # packed: many records per context | padded: one record per context, the rest padding
    separate_raw: bool  # raw-text records in contexts of their own, first in the train split (two-phase training)


def check_params(params: PackParams, where: str) -> None:
    if params.context_length < 2:
        raise ParamsError(f"{where}:pack.context_length: must be >= 2, got {params.context_length}")
    if params.mode not in ("packed", "padded"):
        raise ParamsError(f"{where}:pack.mode: must be packed or padded, got {params.mode!r}")


def find_splits(folder: Path) -> list[str]:
    """The splits present in a tokens folder (one per {split}.offsets.npy); train must be one."""
    if not folder.is_dir():
        raise PackError(f"{folder}: tokens folder not found (run the encode stage first)")
    splits = sorted(p.name.removesuffix(".offsets.npy") for p in folder.glob("*.offsets.npy"))
    if "train" not in splits:
        raise PackError(f"{folder}: no train.offsets.npy (run the encode stage first)")
    return splits


def read_pad_id(folder: Path) -> int:
    """The tokenizer's pad id from the tokens meta.json, else 0. Any valid id would do: the
    padding tail is its own record, never attended to by a real token nor one's target."""
    try:
        return token_files.read_pad_id(folder)
    except ValueError as exc:
        raise PackError(str(exc)) from exc


def load_checked(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, mask, offsets) memory-mapped, after the checks packing relies on."""
    try:
        ids, mask, offsets = load_split(folder, split)
    except (OSError, ValueError, IndexError) as exc:  # disagreeing arrays, not .npy, no offsets
        raise PackError(f"{folder}: {split}: {exc}") from exc
    where = f"{folder}/{split}"
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise PackError(f"{where}.ids.npy: expected a 1-D integer array, got {ids.dtype} {ids.shape}")
    if offsets.ndim != 1 or len(offsets) < 1 or not np.issubdtype(offsets.dtype, np.integer):
        raise PackError(f"{where}.offsets.npy: expected a 1-D integer array of n_records + 1 boundaries")
    if offsets[0] != 0 or np.any(np.diff(offsets) < 0):
        raise PackError(f"{where}.offsets.npy: must start at 0 and never decrease")
    if len(mask) and int(mask.max()) > 1:
        raise PackError(f"{where}.mask.npy: values must be 0 or 1")
    return ids, mask, offsets


@dataclass
class SplitPlan:
    ids: np.ndarray
    mask: np.ndarray
    offsets: np.ndarray
    segments: np.ndarray  # (S, 5) SEGMENT_COLUMNS
    counts: Counter  # drops by reason, records_split, split_pieces
    raw_contexts: int | None = None  # separate_raw: contexts 0 .. raw_contexts - 1 hold only raw text


def plan_split(folder: Path, split: str, params: PackParams) -> SplitPlan:
    """Which piece of which record goes where in the split's contexts (nothing written yet)."""
    ids, mask, offsets = load_checked(folder, split)
    pieces, counts = plan_pieces(offsets, mask, params.context_length, params.long_records)
    if not (params.separate_raw and split == "train"):
        return SplitPlan(ids, mask, offsets, layout(pieces, params), counts)
    first_raw = read_raw_records(folder, len(offsets) - 1)
    raw = layout(pieces[pieces[:, 0] >= first_raw], params)
    chat = layout(pieces[pieces[:, 0] < first_raw], params)
    chat[:, 0] += n_contexts(raw)  # raw contexts first: the trainer's pretraining phase reads 0 .. n - 1
    return SplitPlan(ids, mask, offsets, np.concatenate([raw, chat]), counts, n_contexts(raw))


def layout(pieces: np.ndarray, params: PackParams) -> np.ndarray:
    return layout_segments(pieces, params.context_length, params.seed, params.mode)


def read_raw_records(folder: Path, n_records: int) -> int:
    """Index of the first raw-text record of the train split (they come last); n_records when
    there are none."""
    try:
        first, end = token_files.read_raw_records(folder)
    except ValueError as exc:
        raise PackError(str(exc)) from exc
    if first is None:
        return n_records
    if end != n_records or not 0 <= first <= end:
        raise PackError(f"{folder}: meta.json raw_records [{first}, {end}) disagree with {n_records} train records")
    return first


def split_drops(counts: Counter) -> Drops:
    """The split's dropped records by reason, every reason listed (0 when none was dropped)."""
    drops = Drops("pack")
    for reason in DROP_REASONS:
        drops.add(reason, count=counts[reason])
    return drops


def write_split(plan: SplitPlan, out: Path, split: str, width: int, pad_id: int) -> dict:
    """Fill one split's arrays into `out` (a folder being built), chunk by chunk; its metrics."""
    total = n_contexts(plan.segments)
    writer = PackedSplitWriter(out, split, total, width, plan.ids.dtype)
    loss_tokens = 0
    step = max(1, CHUNK_TOKENS // width)
    for first in progress(range(0, total, step), desc=f"pack {split}", unit="chunk", mininterval=2):
        count = min(step, total - first)
        chunk = fill_contexts(plan.segments, plan.ids, plan.mask, plan.offsets, width, first, count, pad_id)
        writer.write(first, chunk)
        loss_tokens += int(chunk["target_mask"].sum())
    writer.close(plan.segments)
    tokens = int(plan.segments[:, 4].sum())
    useful = round(tokens / (total * width), 5) if total else 0.0
    return {
        "records": len(plan.offsets) - 1,
        "records_packed": len(np.unique(plan.segments[:, 2])),
        "records_split": plan.counts["records_split"],
        "split_pieces": plan.counts["split_pieces"],
        "dropped": split_drops(plan.counts).as_metrics(),
        "contexts": total,
        "tokens": tokens,
        "loss_tokens": loss_tokens,
        "efficiency": useful,  # kept under its old name for existing readers
        "useful_token_share": useful,  # non-padding tokens / context slots (padded mode: low)
        **({"raw_contexts": plan.raw_contexts} if plan.raw_contexts is not None else {}),
    }
