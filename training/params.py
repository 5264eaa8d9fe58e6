"""The train section of params.yaml, which of its keys never change a step's math, and how
runs record them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from common.devices import DEVICES
from common.params import refuse_invalid
from model.attention import BACKENDS

# Keys that change how often we save, log or draw, which step ships or when to stop, never
# what a step computes: a run with other values of these resumes the same checkpoints (a
# run stopped early by a patience of 2 continues exactly as a patience-5 run would have).
COSMETIC_KEYS = frozenset(
    {"checkpoint_every", "keep_checkpoints", "log_every", "monitor_every", "select_best", "early_stop_patience"}
)


# Keys added after runs existed, with the value that reproduces those runs: at that value they are
# left out of the run identity and of what model.pt records, so a default run keeps its identity
# (its checkpoints resume) and its model.pt bytes.
NEUTRAL_DEFAULTS = {"isolation": True, "pretrain_epochs": 0.0, "flash_deterministic": False}


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
    flash_deterministic: bool  # flash-attn's deterministic backward: bit-exact resume on a GPU, a little slower
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

    def __post_init__(self) -> None:
        # Each of these once trained silently wrong or crashed minutes in (grad_clip < 0 turns
        # descent into ascent; keep_checkpoints 0 deleted every checkpoint as it was written).
        batch = self.batch_size
        refuse_invalid(self, [
            ("epochs", self.epochs > 0, "must be > 0"),
            ("max_steps", self.max_steps >= 0, "must be >= 0 (0 = from epochs)"),
            ("batch_size", batch == "auto" or (isinstance(batch, int) and batch >= 1), "must be >= 1 or auto"),
            ("effective_batch_size", self.effective_batch_size >= 1, "must be >= 1"),
            ("lr", self.lr >= 0, "must be >= 0 (0 freezes the weights)"),
            ("min_lr", 0 <= self.min_lr <= self.lr, "must be in [0, lr]"),
            ("warmup_steps", self.warmup_steps >= 0, "must be >= 0"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("weight_decay_late", self.weight_decay_late >= 0, "must be >= 0"),
            ("wd_switch_epochs", self.wd_switch_epochs >= 0, "must be >= 0"),
            ("grad_clip", self.grad_clip >= 0, "must be >= 0 (0 = off)"),
            ("beta1", 0 <= self.beta1 < 1, "must be in [0, 1)"),
            ("beta2", 0 <= self.beta2 < 1, "must be in [0, 1)"),
            ("seed", self.seed >= 0, "must be >= 0"),
            ("device", self.device in DEVICES, f"must be one of {', '.join(DEVICES)}"),
            ("attention", self.attention in ("auto", *BACKENDS), f"must be auto or one of {', '.join(BACKENDS)}"),
            ("vram_headroom_gb", self.vram_headroom_gb >= 0, "must be >= 0"),
            ("max_auto_batch", self.max_auto_batch >= 1, "must be >= 1"),
            ("checkpoint_every", self.checkpoint_every >= 1, "must be >= 1"),
            ("keep_checkpoints", self.keep_checkpoints >= 1, "must be >= 1"),
            ("eval_every", self.eval_every >= 0, "must be >= 0 (0 = only at the end)"),
            ("max_eval_batches", self.max_eval_batches >= 1, "must be >= 1"),
            ("early_stop_patience", self.early_stop_patience >= 0, "must be >= 0 (0 = off)"),
            ("log_every", self.log_every >= 1, "must be >= 1"),
            ("monitor_every", self.monitor_every >= 1, "must be >= 1"),
            ("pretrain_epochs", self.pretrain_epochs >= 0, "must be >= 0 (0 = one phase)"),
        ])  # fmt: skip


def recorded_params(params: TrainParams) -> dict:
    """The params as checkpoints, model.pt and the identity record them (NEUTRAL_DEFAULTS left
    out at their neutral value)."""
    return {
        k: v for k, v in dataclasses.asdict(params).items() if not (k in NEUTRAL_DEFAULTS and v == NEUTRAL_DEFAULTS[k])
    }
