"""Where the trainer runs: torchrun's process view (DDP) and the GPU-memory batch probe."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from model.gpt import GPT
from training.precision import autocast
from training.schedule import find_batch_size


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
    """Join torchrun's process group (nccl on CUDA, gloo on the CPU) when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    torch.distributed.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    return Dist(world, torch.distributed.get_rank(), int(os.environ.get("LOCAL_RANK", "0")))


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


def memory_fits(peak_bytes: Callable[[int], int | None], limit_bytes: float, extra_bytes: int) -> Callable[[int], bool]:
    """fits(batch) for find_batch_size from a peak-memory probe (None = out of memory);
    separate so the rule is tested on the CPU with an injected memory model."""

    def fits(batch: int) -> bool:
        peak = peak_bytes(batch)
        return peak is not None and peak + extra_bytes <= limit_bytes

    return fits
