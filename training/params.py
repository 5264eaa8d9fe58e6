"""The train section of params.yaml, which of its keys never change a step's math, and how
runs record them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# Keys that change how often we save, log or draw, which step ships or when to stop, never
# what a step computes: a run with other values of these resumes the same checkpoints (a
# run stopped early by a patience of 2 continues exactly as a patience-5 run would have).
COSMETIC_KEYS = frozenset(
    {"checkpoint_every", "keep_checkpoints", "log_every", "monitor_every", "select_best", "early_stop_patience"}
)


# Keys added after runs existed, with the value that reproduces those runs: at that value they are
# left out of the run identity and of what model.pt records, so a default run keeps its identity
# (its checkpoints resume) and its model.pt bytes.
NEUTRAL_DEFAULTS = {"isolation": True, "pretrain_epochs": 0.0}


@dataclass(frozen=True)
class TrainParams:
    variant: str  # a name in data/variants.yaml
    epochs: float  # passes over the packed training contexts
    max_steps: int  # optimizer steps; 0 = from epochs
    batch_size: int | str  # physical batch (contexts per micro-step) or "auto" (CUDA)
    effective_batch_size: int  # contexts per optimizer step (seed: 3 × 40 = 120)
    lr: float  # peak learning rate after warmup
    min_lr: float  # floor of the cosine decay
    warmup_steps: int
    weight_decay: float  # for the first wd_switch_epochs epochs (seed: 0.1)
    weight_decay_late: float  # afterwards (seed: 0.05)
    wd_switch_epochs: int
    grad_clip: float  # max global grad norm; 0 = off
    beta1: float
    beta2: float
    seed: int
    device: str  # auto | cpu | cuda
    attention: str  # auto | flash | records | dense
    compile: bool  # torch.compile the model
    vram_headroom_gb: float  # batch_size auto: GPU memory to leave free
    max_auto_batch: int  # batch_size auto: largest batch tried
    checkpoint_every: int  # steps
    keep_checkpoints: int
    eval_every: int  # steps between validation and recall losses; 0 = only at the end
    max_eval_batches: int
    select_best: bool  # ship the weights of the lowest recall loss (false: the last step)
    early_stop_patience: int  # evaluations without a new best recall loss before stopping; 0 = off
    isolation: bool  # false: attention and positions cross the records of a packed context (the seed's bug)
    pretrain_epochs: float  # > 0: epochs over the raw contexts (pack.separate_raw) before `epochs` over the rest
    log_every: int  # steps between DVCLive rows
    monitor_every: int  # steps between monitor PNG refreshes


def recorded_params(params: TrainParams) -> dict:
    """The params as checkpoints, model.pt and the identity record them (NEUTRAL_DEFAULTS left
    out at their neutral value)."""
    return {
        k: v for k, v in dataclasses.asdict(params).items() if not (k in NEUTRAL_DEFAULTS and v == NEUTRAL_DEFAULTS[k])
    }
