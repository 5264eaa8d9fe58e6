"""pack: lay the tokenized records out as fixed-length training contexts.

Every split of the tokens folder (dataset/token_files.py format) is packed by dataset/bin_packing.py:
records assigned to contexts of `context_length` tokens by best-fit decreasing, records
longer than a context split into overlapping pieces or dropped (`long_records`), the context
order shuffled with `seed`. Each context keeps its record boundaries (doc_ids, positions
restarting at 0) and next-token targets that never cross a record, so the trainer only
slices rows: `cu_seqlens_from_positions(positions)` (model/packing.py) gives flash-attn's
boundaries and `targets`/`target_mask` go straight to the loss.

Inputs:  data/tokens/{split}.ids.npy, .mask.npy, .offsets.npy (every split found; train required)
Outputs: data/packed/{split}.{tokens,mask,positions,doc_ids,targets,target_mask}.npy (C, T),
         data/packed/{split}.segments.npy (S, 5): context, context_start, record,
         record_start, length of every packed piece; data/packed/meta.json; metrics/pack.json
         (contexts, efficiency = non-padding share, records split/dropped by reason)

Example:
  python -m stages.pack --params params.yaml --tokens data/tokens --out data/packed \
      --metrics metrics/pack.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from common.cli import setup_logging
from common.io import atomic_dir, write_json
from common.params import ParamsError, load_section
from dataset.bin_packing import (
    DROP_REASONS,
    SEGMENT_COLUMNS,
    LongRecords,
    fill_contexts,
    layout_segments,
    n_contexts,
    plan_pieces,
)
from dataset.token_files import load_split

log = logging.getLogger("pack")

ARRAYS = ("tokens", "mask", "positions", "doc_ids", "targets", "target_mask")
CHUNK_TOKENS = 1 << 22  # tokens filled per step: bounds the gather's index arrays (~100 MB)


class PackError(ValueError):
    """Token arrays the stage cannot pack; the message names the file."""


@dataclass(frozen=True)
class PackParams:
    context_length: int  # tokens per context; must equal the model variant's context_length
    long_records: LongRecords  # split | drop, for records longer than a context
    seed: int  # order of the contexts


def find_splits(folder: Path) -> list[str]:
    """The splits present in a tokens folder (one per {split}.offsets.npy); train must be one."""
    if not folder.is_dir():
        raise PackError(f"{folder}: tokens folder not found (run the tokenize stage first)")
    splits = sorted(p.name.removesuffix(".offsets.npy") for p in folder.glob("*.offsets.npy"))
    if "train" not in splits:
        raise PackError(f"{folder}: no train.offsets.npy (run the tokenize stage first)")
    return splits


def read_pad_id(folder: Path) -> int:
    """The tokenizer's pad id from the tokens meta.json, else 0. Any valid id would do: the
    padding tail is its own record, never attended to by a real token nor one's target."""
    path = folder / "meta.json"
    try:
        pad_id = json.loads(path.read_text(encoding="utf-8")).get("pad_id", 0) if path.exists() else 0
    except (json.JSONDecodeError, AttributeError) as exc:
        raise PackError(f"{path}: not a JSON object: {exc}") from exc
    if not isinstance(pad_id, int) or pad_id < 0:
        raise PackError(f"{path}: pad_id must be a non-negative int, got {pad_id!r}")
    return pad_id


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


def plan_split(folder: Path, split: str, params: PackParams) -> SplitPlan:
    ids, mask, offsets = load_checked(folder, split)
    pieces, counts = plan_pieces(offsets, mask, params.context_length, params.long_records)
    return SplitPlan(ids, mask, offsets, layout_segments(pieces, params.context_length, params.seed), counts)


def write_split(plan: SplitPlan, out: Path, split: str, width: int, pad_id: int) -> dict:
    """Fill one split's arrays into `out` (a folder being built), chunk by chunk; its metrics."""
    total = n_contexts(plan.segments)
    dtypes = {name: np.int32 for name in ARRAYS} | {"tokens": plan.ids.dtype, "targets": plan.ids.dtype}
    dtypes |= {"mask": np.uint8, "target_mask": np.uint8}
    loss_tokens = 0
    if total == 0:  # open_memmap cannot map an empty file
        for name in ARRAYS:
            np.save(out / f"{split}.{name}.npy", np.zeros((0, width), dtype=dtypes[name]))
    else:
        outputs = {
            name: np.lib.format.open_memmap(out / f"{split}.{name}.npy", "w+", dtypes[name], (total, width))
            for name in ARRAYS
        }
        step = max(1, CHUNK_TOKENS // width)
        for first in tqdm(range(0, total, step), desc=f"pack {split}", unit="chunk", mininterval=2):
            count = min(step, total - first)
            chunk = fill_contexts(plan.segments, plan.ids, plan.mask, plan.offsets, width, first, count, pad_id)
            for name, array in chunk.items():
                outputs[name][first : first + count] = array
            loss_tokens += int(chunk["target_mask"].sum())
        for array in outputs.values():
            array.flush()
    np.save(out / f"{split}.segments.npy", plan.segments)
    tokens = int(plan.segments[:, 4].sum())
    return {
        "records": len(plan.offsets) - 1,
        "records_packed": len(np.unique(plan.segments[:, 2])),
        "records_split": plan.counts["records_split"],
        "split_pieces": plan.counts["split_pieces"],
        "dropped": {reason: plan.counts[reason] for reason in DROP_REASONS},
        "contexts": total,
        "tokens": tokens,
        "loss_tokens": loss_tokens,
        "efficiency": round(tokens / (total * width), 5) if total else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--tokens", type=Path, required=True, help="the tokenize stage's output folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params = load_section(args.params, "pack", PackParams)
        if params.context_length < 2:
            raise ParamsError(f"{args.params}:pack.context_length: must be >= 2, got {params.context_length}")
        pad_id = read_pad_id(args.tokens)
        plans = {split: plan_split(args.tokens, split, params) for split in find_splits(args.tokens)}
        if not len(plans["train"].segments):  # checked before anything is written
            raise PackError(f"{args.tokens}: no train record can be packed (dropped: {dict(plans['train'].counts)})")
    except (ParamsError, PackError) as exc:
        log.error("%s", exc)
        return 2
    metrics: dict = {"context_length": params.context_length, "long_records": params.long_records}
    with atomic_dir(args.out) as tmp:
        for split, plan in plans.items():
            metrics[split] = stats = write_split(plan, tmp, split, params.context_length, pad_id)
            log.info(
                "split=%s records=%d contexts=%d efficiency=%.4f records_split=%d dropped=%s",
                split, stats["records"], stats["contexts"], stats["efficiency"], stats["records_split"],
                json.dumps(stats["dropped"]),
            )  # fmt: skip
        meta = {
            "context_length": params.context_length,
            "pad_id": pad_id,
            "arrays": list(ARRAYS),
            "segment_columns": list(SEGMENT_COLUMNS),
            "contexts": {split: metrics[split]["contexts"] for split in plans},
        }
        write_json(tmp / "meta.json", meta)
    write_json(args.metrics, metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
