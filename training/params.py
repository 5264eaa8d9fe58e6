"""The train section of params.yaml, and the run id that names a run's checkpoint folder."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

# Keys that change how often we save, log or draw, never the math: a run with other values
# of these resumes the same checkpoints.
COSMETIC_KEYS = frozenset({"checkpoint_every", "keep_checkpoints", "log_every", "monitor_every"})


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
    eval_every: int  # steps between validation losses; 0 = only at the end
    max_eval_batches: int
    log_every: int  # steps between DVCLive rows
    monitor_every: int  # steps between monitor PNG refreshes

    def run_id(self) -> str:
        """Checkpoint folder name: the variant plus a hash of everything that changes the
        math (not how often we save, log or draw). Epochs and max_steps count too: they set
        the cosine schedule's length, so a longer run is a new run, not a resumed one."""
        spec = {k: v for k, v in dataclasses.asdict(self).items() if k not in COSMETIC_KEYS}
        return f"{self.variant}-{hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]}"
