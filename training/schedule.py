"""Training schedules: learning rate (warmup + cosine), weight decay by epoch, the training
phases (raw-text pretraining, then the rest) and the probe that finds the largest physical
batch that fits in GPU memory."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from training.params import TrainParams


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


@dataclass(frozen=True)
class Phase:
    """A training phase: the train contexts first .. first + contexts - 1, for `steps` steps."""

    first: int
    contexts: int
    steps: int


def training_phases(params: TrainParams, n_contexts: int, raw_contexts: int | None, per_step: int) -> dict:
    """{"main": Phase} over every context, or with train.pretrain_epochs > 0 {"pretrain": the
    leading raw contexts (pack.separate_raw), "main": the rest}; one cosine schedule spans both."""

    def steps(epochs: float, contexts: int) -> int:
        return max(1, int(np.ceil(epochs * contexts / per_step)))

    if params.pretrain_epochs < 0:
        raise ValueError(f"train.pretrain_epochs: must be >= 0, got {params.pretrain_epochs}")
    if params.pretrain_epochs == 0:
        return {"main": Phase(0, n_contexts, steps(params.epochs, n_contexts))}
    if not raw_contexts:
        raise ValueError(
            f"train.pretrain_epochs={params.pretrain_epochs} needs raw-text contexts of their own, and the "
            "packed data has none: set encode.mix.raw > 0 and pack.separate_raw: true"
        )
    if raw_contexts >= n_contexts:
        raise ValueError(
            "train.pretrain_epochs: every packed train context is raw text, none is left for the main phase"
        )
    return {
        "pretrain": Phase(0, raw_contexts, steps(params.pretrain_epochs, raw_contexts)),
        "main": Phase(raw_contexts, n_contexts - raw_contexts, steps(params.epochs, n_contexts - raw_contexts)),
    }
