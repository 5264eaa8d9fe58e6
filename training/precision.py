"""The one numeric-precision rule for every forward pass of training and validation."""

from __future__ import annotations

import contextlib

import torch


def autocast(device: torch.device):
    """bf16 autocast on CUDA (the seed's setting), exact fp32 on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
