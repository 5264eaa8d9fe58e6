"""The encoded-records format: flat numpy arrays that training memory-maps without parsing.

One split (train or val) in a tokens folder is three .npy files:
  {split}.ids.npy      uint16 (vocab <= 65536) or uint32: every record's ids, concatenated
  {split}.mask.npy     uint8, same length: 1 where the loss is taken (dataset/chatml.py)
  {split}.offsets.npy  int64, n_records + 1: record i is ids[offsets[i]:offsets[i + 1]]
plus {split}.records.jsonl ({"id", "article"} per record, in the same order; raw-text records
add "kind": "raw") and meta.json (vocab_size, dtype, im_start_id, im_end_id, pad_id,
val_fraction, seed, splits: tokens_meta, read back by read_pad_id; with encode.mix.raw > 0
also mix and raw_records [first, end) of the train split, read back by read_raw_records).

`SplitWriter` streams records to raw files and converts them to .npy at the end, so memory
stays flat however many tokens there are; `load_split` opens the arrays with mmap_mode="r".

Example:
  ids, mask, offsets = load_split("data/tokens", "train")
  first_ids = ids[offsets[0]:offsets[1]]
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

SPLITS = ("train", "val")
META_FILE = "meta.json"
COPY_CHUNK = 1 << 24  # elements per copy from the raw file into the .npy


def ids_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def split_paths(folder: str | Path, split: str) -> dict[str, Path]:
    folder = Path(folder)
    return {kind: folder / f"{split}.{kind}.npy" for kind in ("ids", "mask", "offsets")}


def raw_to_npy(raw: Path, npy: Path, dtype: np.dtype) -> None:
    """Copy a headerless array file into a .npy (same bytes np.save writes) and remove it."""
    count = raw.stat().st_size // dtype.itemsize
    if count == 0:  # a zero-length file cannot be memory-mapped
        np.save(npy, np.zeros(0, dtype=dtype))
    else:
        source = np.memmap(raw, dtype=dtype, mode="r")
        target = np.lib.format.open_memmap(npy, mode="w+", dtype=dtype, shape=(count,))
        for start in range(0, count, COPY_CHUNK):
            target[start : start + COPY_CHUNK] = source[start : start + COPY_CHUNK]
        target.flush()
        del source, target
    raw.unlink()


class SplitWriter:
    """Appends records of one split to a folder that is being built (an atomic_dir)."""

    def __init__(self, folder: Path, split: str, dtype: np.dtype) -> None:
        self.paths = split_paths(folder, split)
        self.dtype = dtype
        self.raw_ids = self.paths["ids"].with_suffix(".raw")
        self.raw_mask = self.paths["mask"].with_suffix(".raw")
        self.ids_file = open(self.raw_ids, "wb")  # noqa: SIM115 (closed in close())
        self.mask_file = open(self.raw_mask, "wb")  # noqa: SIM115
        self.index_file = open(folder / f"{split}.records.jsonl", "w", encoding="utf-8")  # noqa: SIM115
        self.offsets = [0]
        self.masked = 0
        self.articles: set[str] = set()

    def add(self, ids: list[int], mask: list[int], record_id: str, article: str, kind: str | None = None) -> None:
        """`kind` is written only for records that are not in the records file (raw text)."""
        if len(ids) != len(mask):
            raise ValueError(f"record {record_id}: {len(ids)} ids but {len(mask)} mask values")
        self.ids_file.write(np.asarray(ids, dtype=self.dtype).tobytes())
        self.mask_file.write(np.asarray(mask, dtype=np.uint8).tobytes())
        row = {"id": record_id, "article": article} | ({"kind": kind} if kind else {})
        self.index_file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.offsets.append(self.offsets[-1] + len(ids))
        self.masked += sum(mask)
        self.articles.add(article)

    @property
    def records(self) -> int:
        return len(self.offsets) - 1

    def close(self) -> dict:
        """Finish the .npy files; returns the split's counts."""
        for handle in (self.ids_file, self.mask_file, self.index_file):
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        raw_to_npy(self.raw_ids, self.paths["ids"], self.dtype)
        raw_to_npy(self.raw_mask, self.paths["mask"], np.dtype(np.uint8))
        np.save(self.paths["offsets"], np.asarray(self.offsets, dtype=np.int64))
        return {
            "records": len(self.offsets) - 1,
            "tokens": self.offsets[-1],
            "masked_tokens": self.masked,
            "articles": len(self.articles),
        }


def load_split(folder: str | Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, mask, offsets) of one split, memory-mapped read-only."""
    paths = split_paths(folder, split)
    for path in paths.values():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found (run the encode stage first)")
    ids = np.load(paths["ids"], mmap_mode="r")
    mask = np.load(paths["mask"], mmap_mode="r")
    offsets = np.load(paths["offsets"], mmap_mode="r")
    if len(ids) != len(mask) or offsets[-1] != len(ids):
        raise ValueError(f"{folder}: {split} arrays disagree (ids {len(ids)}, mask {len(mask)}, end {offsets[-1]})")
    return ids, mask, offsets


def tokens_meta(
    vocab_size: int, dtype: np.dtype, special_ids: dict[str, int], val_fraction: float, seed: int, splits: dict
) -> dict:
    """meta.json of a tokens folder; `special_ids` holds im_start_id, im_end_id and pad_id."""
    return {
        "vocab_size": vocab_size,
        "dtype": np.dtype(dtype).name,
        **special_ids,
        "val_fraction": val_fraction,
        "seed": seed,
        "splits": splits,
    }


def read_raw_records(folder: str | Path) -> tuple[int | None, int | None]:
    """[first, end) of the train split's raw-text records (encode.mix.raw > 0 appends them
    after the chat records), or (None, None) when meta.json names none."""
    path = Path(folder) / META_FILE
    try:
        span = json.loads(path.read_text(encoding="utf-8")).get("raw_records") if path.exists() else None
    except (json.JSONDecodeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a JSON object: {exc}") from exc
    if span is None:
        return None, None
    if not (isinstance(span, list) and len(span) == 2 and all(isinstance(v, int) for v in span)):
        raise ValueError(f"{path}: raw_records must be [first, end], got {span!r}")
    return span[0], span[1]


def read_pad_id(folder: str | Path) -> int:
    """The tokenizer's pad id from the tokens meta.json, else 0 (a folder without meta.json).
    Raises ValueError naming the file when meta.json is not a JSON object or pad_id is bad."""
    path = Path(folder) / META_FILE
    try:
        pad_id = json.loads(path.read_text(encoding="utf-8")).get("pad_id", 0) if path.exists() else 0
    except (json.JSONDecodeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a JSON object: {exc}") from exc
    if not isinstance(pad_id, int) or pad_id < 0:
        raise ValueError(f"{path}: pad_id must be a non-negative int, got {pad_id!r}")
    return pad_id
