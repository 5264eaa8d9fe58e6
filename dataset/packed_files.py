"""The packed-contexts format: what the pack stage writes and training and evaluation read.

A packed folder holds, per split (train, val, recall: whatever the tokens folder has), (C, T)
arrays of C contexts of T = context_length tokens:
  {split}.tokens.npy       ids (the tokens folder's dtype, uint16 or uint32)
  {split}.mask.npy         uint8: the encode stage's loss mask of each token (for inspection)
  {split}.positions.npy    int32: position inside its record, restarting at 0 at every record
  {split}.doc_ids.npy      int32: which record a token belongs to (the padding tail is one)
  {split}.targets.npy      ids: the next token of the same record (never across a boundary)
  {split}.target_mask.npy  uint8: 1 where the loss is taken on `targets`
  {split}.segments.npy     int64 (S, 5): context, context_start, record, record_start, length
                           of every packed piece (dataset/bin_packing.py SEGMENT_COLUMNS)
and meta.json: context_length, pad_id, arrays, segment_columns, contexts per split, and with
pack.separate_raw raw_contexts: train contexts 0 .. raw_contexts - 1 hold only raw-text records
(the tag two-phase training reads, raw_context_count).

WRITTEN_ARRAYS are all six, in the order they are written; TRAINING_ARRAYS are the five the
trainer and evaluation load (`mask` is not one: `target_mask` already says where the loss is).
`cu_seqlens_from_positions(positions)` (model/packing.py) gives flash-attn's boundaries.

Example:
  arrays = load_packed(Path("data/packed"), "train")   # memory-mapped, TRAINING_ARRAYS
  width = packed_width(Path("data/packed"))            # T
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from common.files import write_json
from dataset.bin_packing import SEGMENT_COLUMNS

WRITTEN_ARRAYS = ("tokens", "mask", "positions", "doc_ids", "targets", "target_mask")
TRAINING_ARRAYS = ("tokens", "targets", "target_mask", "positions", "doc_ids")
META_FILE = "meta.json"


class DataError(ValueError):
    """Packed data the trainer cannot use; the message names the file."""


def array_path(folder: Path, split: str, name: str) -> Path:
    return folder / f"{split}.{name}.npy"


def segments_path(folder: Path, split: str) -> Path:
    return folder / f"{split}.segments.npy"


def array_dtypes(ids_dtype: np.dtype) -> dict[str, np.dtype]:
    """Every written array's dtype: ids keep the tokens folder's dtype, masks are bytes."""
    dtypes = {name: np.dtype(np.int32) for name in WRITTEN_ARRAYS}
    dtypes |= {"tokens": np.dtype(ids_dtype), "targets": np.dtype(ids_dtype)}
    return dtypes | {"mask": np.dtype(np.uint8), "target_mask": np.dtype(np.uint8)}


class PackedSplitWriter:
    """Writes one split's (C, T) arrays into a folder being built (an atomic_dir), rows in chunks."""

    def __init__(self, folder: Path, split: str, n_contexts: int, width: int, ids_dtype: np.dtype) -> None:
        self.folder, self.split = folder, split
        dtypes = array_dtypes(ids_dtype)
        self.outputs: dict[str, np.ndarray] = {}
        if n_contexts == 0:  # open_memmap cannot map an empty file
            for name in WRITTEN_ARRAYS:
                np.save(array_path(folder, split, name), np.zeros((0, width), dtype=dtypes[name]))
        else:
            self.outputs = {
                name: np.lib.format.open_memmap(
                    array_path(folder, split, name), "w+", dtypes[name], (n_contexts, width)
                )
                for name in WRITTEN_ARRAYS
            }

    def write(self, first: int, chunk: dict[str, np.ndarray]) -> None:
        """Rows first..first + len(chunk) of every array named in `chunk`."""
        for name, array in chunk.items():
            self.outputs[name][first : first + len(array)] = array

    def close(self, segments: np.ndarray) -> None:
        for array in self.outputs.values():
            array.flush()
        np.save(segments_path(self.folder, self.split), segments)


def write_meta(
    folder: Path, context_length: int, pad_id: int, contexts: dict[str, int], raw_contexts: int | None = None
) -> None:
    """`raw_contexts` (pack.separate_raw): train contexts 0 .. raw_contexts - 1 hold only raw text."""
    meta = {
        "context_length": context_length,
        "pad_id": pad_id,
        "arrays": list(WRITTEN_ARRAYS),
        "segment_columns": list(SEGMENT_COLUMNS),
        "contexts": contexts,
    }
    write_json(folder / META_FILE, meta | ({"raw_contexts": raw_contexts} if raw_contexts is not None else {}))


def raw_context_count(folder: Path) -> int | None:
    """How many leading train contexts are raw text (pack.separate_raw), None when not separated."""
    meta = folder / META_FILE
    try:
        value = json.loads(meta.read_text()).get("raw_contexts")
    except (OSError, ValueError, AttributeError) as exc:
        raise DataError(f"{meta}: unreadable pack metadata ({exc})") from exc
    if value is not None and (not isinstance(value, int) or value < 0):
        raise DataError(f"{meta}: raw_contexts must be a non-negative int, got {value!r}")
    return value


def load_packed(folder: Path, split: str) -> dict[str, np.ndarray] | None:
    """The split's TRAINING_ARRAYS (memory-mapped), or None when the split does not exist."""
    paths = {name: array_path(folder, split, name) for name in TRAINING_ARRAYS}
    if not paths["tokens"].exists():
        return None
    arrays = {}
    for name, path in paths.items():
        if not path.exists():
            raise DataError(f"{path}: missing (rerun the pack stage)")
        arrays[name] = np.load(path, mmap_mode="r")
    shape = arrays["tokens"].shape
    bad = [n for n, a in arrays.items() if a.shape != shape]
    if len(shape) != 2 or bad:
        raise DataError(f"{folder}: {split} arrays disagree in shape ({', '.join(bad) or shape})")
    return arrays


def packed_width(folder: Path) -> int:
    """T, the context length the folder was packed with."""
    meta = folder / META_FILE
    try:
        return int(json.loads(meta.read_text())["context_length"])
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{meta}: unreadable pack metadata ({exc})") from exc
