"""train: the custom GPT on packed contexts, with exact resume and a live monitor.

AdamW (decay/no-decay groups), linear warmup + cosine learning rate, gradient clipping,
gradient accumulation (effective batch = physical batch × accumulation × GPUs), weight
decay `weight_decay` for the first `wd_switch_epochs` epochs then `weight_decay_late`,
bf16 autocast on CUDA and fp32 on the CPU, optional torch.compile. `batch_size: auto` on
CUDA finds the largest physical batch that leaves `vram_headroom_gb` free.

Checkpoints (every `checkpoint_every` steps and at the end) hold model, optimizer, step,
epoch, data position, every RNG state and the metric history, written atomically into a
folder named after the run's parameters, so a kill -9 and a rerun continue with the same
losses, and a run with other params never resumes from a foreign checkpoint.

Multi-GPU: the same script under torchrun (DDP), e.g.
  torchrun --nproc_per_node 2 -m stages.train --params params.yaml ...

Inputs:  data/packed (pack stage), data/tokenizer
Outputs: data/model/model.pt (final weights + config), data/checkpoints/<run>/,
         metrics/train.json, metrics/train_monitor.png, dvclive/ (plots, metrics)

Example:
  python -m stages.train --params params.yaml --packed data/packed --tokenizer data/tokenizer \
      --checkpoints data/checkpoints --out data/model --metrics metrics/train.json \
      --plot metrics/train_monitor.png --live dvclive
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from common.cli import setup_logging
from common.params import ParamsError, load_section
from training.checkpoint import CheckpointError, list_checkpoints, load_checkpoint
from model.gpt import GPT
from training.schedule import find_batch_size
from dataset.tokenizer import Tokenizer, TokenizerError
from training.batches import DataError, make_batch

log = logging.getLogger("train")


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
        cosmetic = {"checkpoint_every", "keep_checkpoints", "log_every", "monitor_every"}
        spec = {k: v for k, v in dataclasses.asdict(self).items() if k not in cosmetic}
        return f"{self.variant}-{hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]}"


@dataclass
class Dist:
    """torchrun's view of this process (world 1 when run alone)."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_kind: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    torch.distributed.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    return Dist(world, torch.distributed.get_rank(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(requested: str, dist: Dist) -> torch.device:
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise ParamsError("train.device: cuda requested but no CUDA device is available")
        return torch.device("cuda", dist.local_rank)
    return torch.device("cpu")


def autocast(device: torch.device):
    """bf16 autocast on CUDA (the seed's setting), exact fp32 on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def probe_batch_size(model: GPT, device: torch.device, width: int, headroom_gb: float, upper: int) -> int:
    """Largest physical batch whose forward+backward peak, plus AdamW's two fp32 moments,
    leaves `headroom_gb` of the GPU free."""
    total = torch.cuda.get_device_properties(device).total_memory
    optimizer_bytes = 2 * 4 * model.num_params()
    limit = total - headroom_gb * 2**30

    def peak_bytes(batch: int) -> int | None:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        try:
            idx = torch.randint(model.config.vocab_size, (batch, width), device=device)
            with autocast(device):
                _, loss = model(idx, targets=idx)
            loss.backward()
            return torch.cuda.max_memory_allocated(device)
        except torch.OutOfMemoryError:
            return None
        finally:
            model.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()

    return find_batch_size(memory_fits(peak_bytes, limit, optimizer_bytes), upper)


def memory_fits(peak_bytes, limit_bytes: float, extra_bytes: int):
    """fits(batch) for find_batch_size from a peak-memory probe (None = out of memory);
    separate so the rule is tested on the CPU with an injected memory model."""

    def fits(batch: int) -> bool:
        peak = peak_bytes(batch)
        return peak is not None and peak + extra_bytes <= limit_bytes

    return fits


@torch.no_grad()
def validation_loss(model, arrays, batch: int, device, max_batches: int) -> float | None:
    """Token-weighted mean loss over (up to max_batches batches of) the validation contexts."""
    if arrays is None or len(arrays["tokens"]) == 0:
        return None
    model.eval()
    total, count = 0.0, 0
    n = len(arrays["tokens"])
    for start in range(0, min(n, batch * max_batches), batch):
        data = make_batch(arrays, torch.arange(start, min(n, start + batch)).numpy(), device)
        with autocast(device):
            _, loss = model(**data.as_kwargs())
        tokens = int(data.loss_mask.sum())
        total += float(loss) * tokens
        count += tokens
    model.train()
    return total / count if count else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--packed", type=Path, required=True)
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--checkpoints", type=Path, required=True, help="root; each run gets its own folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for the final model.pt")
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--plot", type=Path, required=True, help="live monitor PNG")
    parser.add_argument("--live", type=Path, default=Path("dvclive"), help="DVCLive folder")
    parser.add_argument("--resume-from", type=Path, help="a specific checkpoint (default: the run's newest)")
    parser.add_argument("--stop-after", type=int, help="exit after this step (the orchestrator trains in slices)")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params = load_section(args.params, "train", TrainParams)
        from training.trainer import Trainer

        trainer = Trainer(params, args)
        return trainer.run()
    except (ParamsError, DataError, TokenizerError, CheckpointError, ValueError, KeyError) as exc:
        log.error("%s", exc.args[0] if isinstance(exc, KeyError) else exc)
        return 2


def load_tokenizer_size(folder: Path) -> int:
    return Tokenizer.load(folder).vocab_size


def resume_state(folder: Path, explicit: Path | None) -> dict | None:
    """The checkpoint to resume from: the explicit one, else the run's newest. A corrupt
    newest checkpoint is an error (naming the previous good one), never silently skipped."""
    if explicit is not None:
        return load_checkpoint(explicit)
    checkpoints = list_checkpoints(folder)
    if not checkpoints:
        return None
    try:
        return load_checkpoint(checkpoints[-1])
    except CheckpointError as exc:
        previous = checkpoints[-2] if len(checkpoints) > 1 else None
        hint = f"; resume from the previous one with --resume-from {previous}" if previous else ""
        raise CheckpointError(f"{exc}{hint}") from exc


if __name__ == "__main__":
    sys.exit(main())
