"""Checkpoints that are written atomically and hold everything an exact resume needs.

A checkpoint is one torch.save'd dict: model and optimizer state, step, epoch, position in
the epoch's data order, every RNG state (as plain ints and tensors, so the file loads with
torch.load(weights_only=True): a checkpoint is data and can never run code), the metric
history, the config/params that made it, the run identity (training/identity.py) and the best-on-recall state with its weights
(training/best.py). It is written to a temp file beside the target and moved into place, so
a kill -9 mid-write leaves the previous checkpoints untouched; older ones are pruned only
after the new one is in place. Loading checks the file before trusting it and names what is wrong.
"""

from __future__ import annotations

import logging
import os
import pickle
import random
import re
from pathlib import Path

import numpy as np
import torch

from common.files import atomic_write

log = logging.getLogger("train")
CHECKPOINT = re.compile(r"^step-(\d{8})\.pt$")
REQUIRED_KEYS = ("model", "optimizer", "step", "epoch", "epoch_position", "rng", "history", "config")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file."""


def checkpoint_path(folder: Path, step: int) -> Path:
    return folder / f"step-{step:08d}.pt"


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints in `folder`, oldest first."""
    if not folder.exists():
        return []
    return sorted(p for p in folder.iterdir() if CHECKPOINT.match(p.name))


def save_checkpoint(folder: Path, step: int, state: dict, keep: int) -> Path:
    """Write atomically, then keep only the newest `keep` checkpoints."""
    path = checkpoint_path(folder, step)
    with atomic_write(path, "wb") as handle:
        torch.save(state, handle)
    for old in list_checkpoints(folder)[:-keep]:
        old.unlink()
    return path


def load_checkpoint(path: Path) -> dict:
    """Load and sanity-check a checkpoint; a truncated, foreign or code-carrying file raises
    CheckpointError. weights_only=True: the unpickler builds tensors and plain containers only,
    so a crafted step-*.pt (or --resume-from file) cannot run anything."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except pickle.UnpicklingError as exc:  # weights_only refused a global: code, or a foreign object
        raise CheckpointError(
            f"{path}: refused to load: it holds objects other than tensors and plain data "
            f"(a checkpoint never does; do not trust this file): {str(exc).splitlines()[0]}"
        ) from exc
    except Exception as exc:  # torch raises RuntimeError/EOFError/UnpicklingError on torn files
        raise CheckpointError(
            f"{path}: unreadable checkpoint (truncated or corrupt?): {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(state, dict) or any(key not in state for key in REQUIRED_KEYS):
        missing = [k for k in REQUIRED_KEYS if not isinstance(state, dict) or k not in state]
        raise CheckpointError(f"{path}: not a ww2lm training checkpoint (missing {', '.join(missing)})")
    return state


def capture_rng(device: torch.device) -> dict:
    """Every RNG state as ints and tensors (numpy's key array as a tensor). On CUDA only this
    rank's device: touching the others would create a context on every GPU of the node."""
    name, key, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"name": name, "key": torch.from_numpy(key.astype(np.int64)), "pos": pos,
                  "has_gauss": has_gauss, "cached_gaussian": cached},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }  # fmt: skip


def restore_rng(rng: dict, device: torch.device) -> None:
    random.setstate(rng["python"])
    numpy = rng["numpy"]
    key = numpy["key"].numpy().astype(np.uint32)
    np.random.set_state((numpy["name"], key, numpy["pos"], numpy["has_gauss"], numpy["cached_gaussian"]))
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], device)


def resume_state(folder: Path, explicit: Path | None) -> tuple[Path, dict] | None:
    """The checkpoint to resume from and its state: the explicit one, else the run's newest. A
    corrupt newest checkpoint is an error naming the newest earlier one that loads (checked),
    never silently skipped. Resuming explicitly past unreadable checkpoints sets them aside
    as `<name>.corrupt`, so the next plain run resumes this run's own newest, not them."""
    if explicit is not None:
        state = load_checkpoint(explicit)
        for later in list_checkpoints(folder):
            if int(CHECKPOINT.match(later.name).group(1)) > state["step"] and _unreadable(later):
                aside = later.with_name(later.name + ".corrupt")
                os.replace(later, aside)
                log.warning("set_aside path=%s reason=unreadable (resumed from %s)", aside, explicit)
        return explicit, state
    checkpoints = list_checkpoints(folder)
    if not checkpoints:
        return None
    try:
        return checkpoints[-1], load_checkpoint(checkpoints[-1])
    except CheckpointError as exc:
        good = next((p for p in reversed(checkpoints[:-1]) if not _unreadable(p)), None)
        hint = (
            f"; the newest good one is {good}: resume with --resume-from {good}" if good else "; no earlier one loads"
        )
        raise CheckpointError(f"{exc}{hint}") from exc


def _unreadable(path: Path) -> bool:
    try:
        load_checkpoint(path)
    except CheckpointError:
        return True
    return False
