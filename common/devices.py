"""Where torch work runs: one rule for every stage and tool (`device: auto | cpu | cuda`)."""

from __future__ import annotations

import torch

from common.params import ParamsError

DEVICES = ("auto", "cpu", "cuda")


class ModelLoadError(ValueError):
    """A model cannot be loaded on this device: its files are missing, incomplete or unusable,
    or the device it asks for is not there. Raised by our GPT's loader and the transformers backend."""


def pick_device(requested: str, key: str, local_rank: int = 0) -> torch.device:
    """`auto` takes CUDA when torch sees it, else the CPU; `cuda` without a GPU is an error
    naming the params key (e.g. "train.device"). `local_rank` picks a DDP rank's GPU."""
    if requested not in DEVICES:
        raise ParamsError(f"{key}: {requested!r} is not one of {', '.join(DEVICES)}")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise ParamsError(f"{key}: cuda requested but no CUDA device is available")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")
