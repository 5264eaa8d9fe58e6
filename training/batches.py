"""Packed training data for the trainer: memory-mapped arrays, the epoch order and batches.

The pack stage wrote (C, T) arrays per split (format, load_packed and packed_width:
dataset/packed_files.py); training only slices rows. The order of the
contexts in epoch e is a permutation from `seed + e`, so the data position (epoch, index)
in a checkpoint is enough to resume on exactly the next batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from dataset.packed_files import TRAINING_ARRAYS, DataError, load_packed, packed_width
from model.packing import PackedBatch

# DataError, load_packed and packed_width are re-exported for the modules that still import
# them from here (training/trainer.py, stages/evaluate.py, stages/train.py); new code imports
# them from dataset/packed_files.py.
__all__ = ["Cursor", "DataError", "batch_cu_seqlens", "load_packed", "make_batch", "packed_width"]


def batch_cu_seqlens(doc_ids: torch.Tensor) -> torch.Tensor:
    """flash-attn style int32 boundaries over the flattened (B, T) batch: a record starts at
    every row start and wherever the doc id changes (the padding tail is one record)."""
    b, t = doc_ids.shape
    flat = doc_ids.reshape(-1)
    starts = torch.ones_like(flat, dtype=torch.bool)
    starts[1:] = flat[1:] != flat[:-1]
    starts[::t] = True
    index = torch.nonzero(starts).flatten()
    return torch.cat([index, torch.tensor([b * t], device=index.device)]).to(torch.int32)


def make_batch(
    arrays: dict[str, np.ndarray], rows: np.ndarray, device: torch.device, isolation: bool = True
) -> PackedBatch:
    """The batch of the given context rows. `isolation=False` (train.isolation) reproduces the
    seed project's bleed-over bug: each context is one causal sequence, positions 0..T-1 and
    attention across its records, while targets and the loss mask stay per record."""
    rows = np.sort(rows)  # memory-mapped reads in file order; the order inside a batch is irrelevant
    take = {name: torch.from_numpy(np.ascontiguousarray(arrays[name][rows])) for name in TRAINING_ARRAYS}
    positions, doc_ids = take["positions"].long(), take["doc_ids"]
    if not isolation:
        positions = torch.arange(positions.shape[1]).expand_as(positions).contiguous()
        doc_ids = torch.zeros_like(doc_ids)  # one record per row: batch_cu_seqlens cuts at row starts only
    return PackedBatch(
        idx=take["tokens"].long().to(device),
        targets=take["targets"].long().to(device),
        loss_mask=take["target_mask"].bool().to(device),
        positions=positions.to(device),
        cu_seqlens=batch_cu_seqlens(doc_ids).to(device),
    )


@dataclass
class Cursor:
    """Where the trainer is in the data: epoch and index into that epoch's order."""

    epoch: int
    position: int
    _order: tuple[int, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def order(self, n_contexts: int, seed: int) -> np.ndarray:
        if self._order is None or self._order[0] != self.epoch:
            self._order = (self.epoch, np.random.default_rng(seed + self.epoch).permutation(n_contexts))
        return self._order[1]

    def take(self, n_contexts: int, count: int, seed: int, first: int = 0) -> np.ndarray:
        """The next `count` context indices, rolling into the next epoch's order when one ends;
        the epoch runs over contexts first .. first + n_contexts - 1 (a training phase's range)."""
        taken = []
        while len(taken) < count:
            order = self.order(n_contexts, seed)
            chunk = order[self.position : self.position + count - len(taken)]
            taken.extend(chunk.tolist())
            self.position += len(chunk)
            if self.position >= n_contexts:
                self.epoch, self.position = self.epoch + 1, 0
        return np.asarray(taken, dtype=np.int64) + first
