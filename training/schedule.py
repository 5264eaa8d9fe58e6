"""Training schedules: learning rate (warmup + cosine), weight decay by epoch, and the probe
that finds the largest physical batch that fits in GPU memory."""

from __future__ import annotations

import math
from collections.abc import Callable


def learning_rate(step: int, total_steps: int, warmup_steps: int, max_lr: float, min_lr: float) -> float:
    """Linear warmup to max_lr, then cosine decay to min_lr at total_steps (GPT-2/3 recipe)."""
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)


def weight_decay(epoch: int, switch_epochs: int, early: float, late: float) -> float:
    """The seed's schedule: `early` (0.1) for the first `switch_epochs` (2) epochs, then `late` (0.05)."""
    return early if epoch < switch_epochs else late


def find_batch_size(fits: Callable[[int], bool], upper: int) -> int:
    """Largest batch b in [1, upper] with fits(b), assuming fits is monotone (a bigger batch
    never fits where a smaller one did not): doubling, then bisection. fits(b) runs one real
    forward/backward at b and says whether it stayed under the memory limit."""
    if not fits(1):
        raise MemoryError("even a batch of 1 does not fit in the memory left after the headroom")
    good, bad = 1, None
    while bad is None:
        trial = min(good * 2, upper)
        if trial == good:
            return good
        if fits(trial):
            good = trial
        else:
            bad = trial
    while bad - good > 1:
        middle = (good + bad) // 2
        if fits(middle):
            good = middle
        else:
            bad = middle
    return good


def accumulation_steps(effective_batch: int, physical_batch: int) -> int:
    """Micro-batches per optimizer step so physical × accumulation reaches the effective batch
    (rounded up: never a smaller effective batch than asked)."""
    return max(1, math.ceil(effective_batch / physical_batch))
