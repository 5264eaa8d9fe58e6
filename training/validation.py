"""Validation loss over the packed validation contexts (the trainer and the evaluate stage)."""

from __future__ import annotations

import torch

from training.batches import make_batch
from training.precision import autocast


@torch.no_grad()
def validation_loss(model, arrays, batch: int, device, max_batches: int) -> float | None:
    """Token-weighted mean loss over (up to max_batches batches of) the validation contexts.
    Leaves the model in train mode."""
    if arrays is None or len(arrays["tokens"]) == 0:
        return None
    model.eval()
    total, count = 0.0, 0
    n = len(arrays["tokens"])
    for start in range(0, min(n, batch * max_batches), batch):
        data = make_batch(arrays, torch.arange(start, min(n, start + batch)).numpy(), device)
        with autocast(device):
            _, loss = model(**data.as_kwargs(), return_logits=False)
        tokens = int(data.loss_mask.sum())
        total += float(loss) * tokens
        count += tokens
    model.train()
    return total / count if count else None
