"""Tensors for packed contexts: record boundaries, per-record positions, shifted targets.

A batch is B rows of T tokens; each row holds whole records back to back. Flattened to
N = B*T tokens, the records are described by `cu_seqlens` (int32 [0, l1, l1+l2, ..., N]),
and every record's positions restart at 0, so the two describe the same boundaries and
either can be derived from the other.

How targets and the loss mask line up (the caller's side of `GPT.forward`):
  * a record's token mask (from the tokenize stage) marks the tokens the model must learn
    to produce: the assistant content and its <|im_end|>, nothing of the user turn;
  * `targets[t]` is the token after `idx[t]` in the same record, and
    `loss_mask[t] = token_mask[t + 1]`: position t is trained to predict token t+1;
  * the last position of every record has no next token in its record, so its loss mask
    is 0 (and its target a harmless 0): no record learns to predict the next record's
    first token. `record_targets` builds exactly this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


def cu_seqlens_from_lengths(lengths: Sequence[int], device: torch.device | str | None = None) -> Tensor:
    """[l1, l2, ...] -> int32 [0, l1, l1+l2, ...]."""
    cu = torch.zeros(len(lengths) + 1, dtype=torch.int32, device=device)
    cu[1:] = torch.cumsum(torch.as_tensor(lengths, dtype=torch.int64, device=device), 0)
    return cu


def positions_from_cu_seqlens(cu_seqlens: Tensor, total: int) -> Tensor:
    """Positions restarting at 0 in every record: (N,) int64 for N=`total` tokens."""
    cu = cu_seqlens.long()
    starts = torch.repeat_interleave(cu[:-1], cu[1:] - cu[:-1], output_size=total)  # (N,) own record's start
    return torch.arange(total, device=cu.device) - starts


def cu_seqlens_from_positions(positions: Tensor) -> Tensor:
    """Record boundaries implied by positions (a record starts wherever the position is 0)."""
    flat = positions.reshape(-1)
    if flat.numel() == 0 or flat[0].item() != 0:
        raise ValueError("positions must start at 0 (the first token opens a record)")
    starts = torch.nonzero(flat == 0).flatten()
    end = torch.tensor([flat.numel()], device=flat.device)
    return torch.cat([starts, end]).to(torch.int32)


def record_targets(idx: Tensor, token_mask: Tensor, cu_seqlens: Tensor) -> tuple[Tensor, Tensor]:
    """Next-token targets and their loss mask that never cross a record boundary.

    idx, token_mask: (B, T); cu_seqlens over the flattened B*T tokens.
    Returns targets (B, T) int64 and loss_mask (B, T) bool; see the module docstring.
    """
    flat_idx, flat_mask = idx.reshape(-1), token_mask.reshape(-1).bool()  # (N,)
    last = torch.zeros_like(flat_mask)
    last[cu_seqlens[1:].long() - 1] = True  # each record's final token has no successor in it
    targets = torch.roll(flat_idx, -1).masked_fill(last, 0)  # never holds another record's token
    loss_mask = torch.roll(flat_mask, -1) & ~last
    return targets.view_as(idx).long(), loss_mask.view_as(idx)


@dataclass(frozen=True)
class PackedBatch:
    """Everything `GPT.forward` takes for a packed batch: `model(**batch.as_kwargs())`."""

    idx: Tensor  # (B, T) int64 token ids
    targets: Tensor  # (B, T) int64: the next token within the record
    loss_mask: Tensor  # (B, T) bool: which targets count in the loss
    positions: Tensor  # (B, T) int64, restarting at 0 per record
    cu_seqlens: Tensor  # (R+1,) int32 over the flattened B*T tokens

    def as_kwargs(self) -> dict[str, Tensor]:
        return {f: getattr(self, f) for f in ("idx", "targets", "loss_mask", "positions", "cu_seqlens")}


def pack_rows(
    rows: Sequence[Sequence[tuple[Sequence[int], Sequence[int]]]], context_length: int, pad_id: int = 0
) -> PackedBatch:
    """Lay out rows of (ids, token_mask) records as a PackedBatch of B=len(rows) rows of T=context_length.

    Which records share a row is the packer's choice; this only builds the tensors. A row's
    unused tail becomes one padding record (pad_id, mask 0) so it attends only to itself.
    """
    ids: list[int] = []
    mask: list[int] = []
    lengths: list[int] = []
    for r, row in enumerate(rows):
        used = 0
        for record_ids, record_mask in row:
            if len(record_ids) != len(record_mask) or not record_ids:
                raise ValueError(f"row {r}: a record needs as many mask values as ids, and at least one id")
            ids.extend(record_ids)
            mask.extend(record_mask)
            lengths.append(len(record_ids))
            used += len(record_ids)
        if used > context_length:
            raise ValueError(f"row {r} holds {used} tokens, more than context_length={context_length}")
        if used < context_length:
            ids.extend([pad_id] * (context_length - used))
            mask.extend([0] * (context_length - used))
            lengths.append(context_length - used)
    idx = torch.tensor(ids, dtype=torch.long).view(len(rows), context_length)
    token_mask = torch.tensor(mask, dtype=torch.bool).view_as(idx)
    cu_seqlens = cu_seqlens_from_lengths(lengths)
    targets, loss_mask = record_targets(idx, token_mask, cu_seqlens)
    positions = positions_from_cu_seqlens(cu_seqlens, idx.numel()).view_as(idx)
    return PackedBatch(idx, targets, loss_mask, positions, cu_seqlens)
