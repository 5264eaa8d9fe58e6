"""Where the trainer runs: torchrun's process view (DDP), wrapping the model for it, and the
GPU-memory batch probe. The CUDA and process-group calls take injectable stand-ins, so the
rules are tested on the CPU (tests/test_distributed.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from model.gpt import GPT
from training.precision import autocast
from training.schedule import find_batch_size

# Kept free beyond the user's headroom: the caching allocator's fragmentation grows over a long
# run, and NCCL and cuBLAS workspaces are allocated after the probe.
PROBE_MARGIN = 0.05  # of the GPU's total memory


@dataclass
class Dist:
    """torchrun's view of this process (world 1 when run alone)."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_kind: str, cuda=torch.cuda, dist=torch.distributed) -> Dist:
    """Join torchrun's process group (nccl on CUDA, gloo on the CPU) when WORLD_SIZE > 1. On
    CUDA the rank's GPU is made current first: NCCL binds its communicator to the current
    device, and without it every rank would set up on GPU 0."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_kind == "cuda":
        cuda.set_device(local_rank)
    dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    return Dist(world, dist.get_rank(), local_rank)


def shutdown_distributed(dist=torch.distributed) -> None:
    """Leave the process group (NCCL warns of leaked communicators, and may hang at exit,
    without it); a no-op when none was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: GPT, world: int, device: torch.device, compile_model: bool, ddp=None, compile_fn=None):
    """DDP first, then torch.compile: compiling the DDP module lets dynamo's DDPOptimizer split
    the graph at DDP's bucket boundaries, so gradient all-reduce overlaps the backward
    (https://pytorch.org/docs/stable/notes/ddp.html#torchdynamo-ddpoptimizer)."""
    ddp = ddp or torch.nn.parallel.DistributedDataParallel
    compile_fn = compile_fn or torch.compile
    if world > 1:
        model = ddp(model, device_ids=[device.index] if device.type == "cuda" else None)
    return compile_fn(model) if compile_model else model


def agree_batch_size(batch: int, world: int, device: torch.device, dist=torch.distributed) -> int:
    """The smallest of every rank's probed batch: ranks must run the same batch and
    accumulation count, or their collectives fall out of step and hang."""
    if world == 1:
        return batch
    tensor = torch.tensor([batch], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return int(tensor.item())


def auto_batch_upper(effective_batch_size: int, world: int, max_auto_batch: int) -> int:
    """The largest physical batch worth probing: more than the effective batch's share of a
    rank would make one micro-step bigger than the whole optimizer step asked for."""
    return max(1, min(max_auto_batch, effective_batch_size // world))


def usable_bytes(free: int, reserved: int, total: int, headroom_gb: float) -> float:
    """Memory a training step may reach: what is free plus what this process's allocator
    already holds (other processes and the CUDA context stay out), minus the headroom the
    user asked for and PROBE_MARGIN."""
    return free + reserved - headroom_gb * 2**30 - PROBE_MARGIN * total


def probe_batch_size(
    model: GPT, device: torch.device, width: int, headroom_gb: float, upper: int, cuda=torch.cuda
) -> int:
    """Largest physical batch whose forward+backward peak (reserved, not only allocated:
    the allocator's cached blocks are memory the GPU cannot give to anyone else), plus
    AdamW's two fp32 moments, fits in `usable_bytes`."""
    cuda.empty_cache()
    free, total = cuda.mem_get_info(device)
    limit = usable_bytes(free, cuda.memory_reserved(device), total, headroom_gb)
    optimizer_bytes = 2 * 4 * model.num_params()

    def peak_bytes(batch: int) -> int | None:
        cuda.empty_cache()
        cuda.reset_peak_memory_stats(device)
        try:
            idx = torch.randint(model.config.vocab_size, (batch, width), device=device)
            with autocast(device):
                _, loss = model(idx, targets=idx)
            loss.backward()
            return cuda.max_memory_reserved(device)
        except torch.OutOfMemoryError:
            return None
        finally:
            model.zero_grad(set_to_none=True)
            cuda.empty_cache()

    return find_batch_size(memory_fits(peak_bytes, limit, optimizer_bytes), upper)


def memory_fits(peak_bytes: Callable[[int], int | None], limit_bytes: float, extra_bytes: int) -> Callable[[int], bool]:
    """fits(batch) for find_batch_size from a peak-memory probe (None = out of memory);
    separate so the rule is tested on the CPU with an injected memory model."""

    def fits(batch: int) -> bool:
        peak = peak_bytes(batch)
        return peak is not None and peak + extra_bytes <= limit_bytes

    return fits


def choose_auto_batch(
    probe: Callable[[int], int], agree: Callable[[int], int], upper: int, stored: int | None = None
) -> int:
    """`batch_size: auto`: the batch `stored` in the checkpoint being resumed (so the
    accumulation count and the schedule stay), else every rank probes up to `upper` and all
    take the smallest result. A rank where even a batch of 1 fails still joins the agreement
    (with 0), so every rank stops with the error instead of the others waiting forever."""
    if stored is not None:
        return stored
    try:
        local = probe(upper)
    except MemoryError:
        local = 0
    batch = agree(local)
    if batch < 1:
        raise MemoryError("train.batch_size auto: even a batch of 1 does not fit the memory left after the headroom")
    return batch
