"""Record-isolated causal attention for packed contexts.

A packed context holds several records back to back. Each token attends causally to the
tokens of its own record only, never across a record boundary (README.md, "Training"). The
boundaries travel as `cu_seqlens`, flash-attn's varlen convention: an
int32 vector [0, l1, l1+l2, ..., N] of cumulative record lengths over the flattened batch
of N = B*T tokens. Tensors use flash-attn's layout too: q, k, v and the output are
(N, nh, hs).

Backends:
  flash    flash-attn's `flash_attn_varlen_func` (CUDA, fp16/bf16). Cost ~ sum of l_i^2.
  records  exact, any device and dtype, the CPU default: one causal SDPA call per record, so
           the cost is ~ sum of l_i^2 rather than T^2 (bench/attention.py, 2 CPU cores, 24
           records in 4096 tokens: ~12x faster than `dense` forward, 11-22x forward+backward).
  dense    one SDPA call over all N tokens with an explicit (N, N) block-diagonal causal
           mask: O(N^2) time and memory, kept as the obvious reference for the tests.

`choose_backend` picks flash when it can run, else records; `plan_records` turns
cu_seqlens into a `RecordPlan` once per forward, shared by every layer; `attend` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 (PyTorch's own convention)
from torch import Tensor

try:  # optional: only a CUDA box with flash-attn installed has it
    from flash_attn import flash_attn_varlen_func
except ImportError:  # pragma: no cover - depends on the machine
    flash_attn_varlen_func = None

BACKENDS = ("flash", "records", "dense")
FLASH_DTYPES = (torch.float16, torch.bfloat16)  # flash-attn's kernels exist for these only


def flash_unavailable_reason(device: torch.device, dtype: torch.dtype) -> str | None:
    """Why the flash backend cannot run here, or None when it can."""
    if flash_attn_varlen_func is None:
        return "the flash_attn package is not installed"
    if device.type != "cuda":
        return f"flash-attn needs a CUDA device, got {device.type}"
    if dtype not in FLASH_DTYPES:
        return f"flash-attn needs float16 or bfloat16, got {dtype} (train under torch.autocast)"
    return None


def choose_backend(device: torch.device | str, dtype: torch.dtype, requested: str = "auto") -> str:
    """The backend to use: `requested` if it can run, or for "auto" flash when possible, else records.

    `dtype` is the dtype q/k/v will have, i.e. the autocast dtype when autocast is on.
    """
    device = torch.device(device)
    if requested == "auto":
        return "flash" if flash_unavailable_reason(device, dtype) is None else "records"
    if requested not in BACKENDS:
        raise ValueError(f"unknown attention backend {requested!r}; known: auto, {', '.join(BACKENDS)}")
    if requested == "flash" and (reason := flash_unavailable_reason(device, dtype)):
        raise RuntimeError(f"attention backend 'flash' cannot run: {reason}")
    return requested


@dataclass(frozen=True)
class RecordPlan:
    """One batch's record boundaries, prepared once per forward and shared by all layers."""

    backend: str  # one of BACKENDS
    cu_seqlens: Tensor  # (R+1,) int32 on the tokens' device, [0, l1, l1+l2, ..., N]
    lengths: tuple[int, ...]  # (R,) record lengths as Python ints: the records backend loops over them
    max_seqlen: int  # the longest record, which flash-attn sizes its work by
    dense_mask: Tensor | None = None  # (N, N) bool, True = may attend; dense backend only
    deterministic: bool = False  # flash: a deterministic backward (its default is not; see attend)


@torch.compiler.disable  # reads tensor values into Python ints: keep it out of compiled graphs
def plan_records(
    cu_seqlens: Tensor, total: int, backend: str, device: torch.device | str | None = None, deterministic: bool = False
) -> RecordPlan:
    """Check cu_seqlens against the N=`total` tokens and precompute what `backend` needs."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; known: {', '.join(BACKENDS)}")
    if cu_seqlens.dim() != 1 or cu_seqlens.numel() < 2:
        raise ValueError(f"cu_seqlens must be 1-D with at least 2 entries, got shape {tuple(cu_seqlens.shape)}")
    bounds = cu_seqlens.tolist()
    lengths = tuple(end - start for start, end in zip(bounds[:-1], bounds[1:], strict=True))
    if bounds[0] != 0 or bounds[-1] != total or min(lengths) < 1:
        raise ValueError(f"cu_seqlens must rise strictly from 0 to {total} (the token count), got {bounds}")
    device = cu_seqlens.device if device is None else torch.device(device)
    cu_seqlens = cu_seqlens.to(device=device, dtype=torch.int32)  # flash-attn insists on int32
    dense_mask = None
    if backend == "dense":
        record = torch.repeat_interleave(
            torch.arange(len(lengths), device=device), torch.tensor(lengths, device=device)
        )
        dense_mask = (record[:, None] == record[None, :]).tril()  # same record and not in the future
    return RecordPlan(backend, cu_seqlens, lengths, max(lengths), dense_mask, deterministic)


def attend(q: Tensor, k: Tensor, v: Tensor, plan: RecordPlan) -> Tensor:
    """Causal attention within each record of `plan`: q, k, v (N, nh, hs) -> (N, nh, hs).

    The softmax scale is 1/sqrt(hs), as in GPT-2. flash-attn's backward accumulates dq with
    atomic adds in no fixed order, so two runs differ in the last bits unless `deterministic`
    (its docs: slightly slower, more memory); the records and dense backends are exact anyway.
    """
    if plan.backend == "flash":
        return flash_attn_varlen_func(
            q, k, v, plan.cu_seqlens, plan.cu_seqlens, plan.max_seqlen, plan.max_seqlen, causal=True,
            deterministic=plan.deterministic,
        )  # fmt: skip
    if plan.backend == "records":
        return records_attention(q, k, v, plan.lengths)
    return dense_attention(q, k, v, plan.dense_mask)


def records_attention(q: Tensor, k: Tensor, v: Tensor, lengths: tuple[int, ...]) -> Tensor:
    """Exact per-record causal attention: q, k, v (N, nh, hs) -> (N, nh, hs), cost ~ sum(l_i^2)."""
    if len(set(lengths)) == 1:  # equal records (e.g. one per row, no packing): one batched call
        return _uniform_attention(q, k, v, lengths[0])
    return _per_record_attention(q, k, v, lengths)


def _uniform_attention(q: Tensor, k: Tensor, v: Tensor, length: int) -> Tensor:
    n, nh, hs = q.shape
    q, k, v = (t.view(n // length, length, nh, hs).transpose(1, 2) for t in (q, k, v))  # (R, nh, l, hs)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (R, nh, l, hs)
    return y.transpose(1, 2).reshape(n, nh, hs)


@torch.compiler.disable  # a Python loop over data-dependent lengths: one graph per layout otherwise
def _per_record_attention(q: Tensor, k: Tensor, v: Tensor, lengths: tuple[int, ...]) -> Tensor:
    # Record-by-record SDPA measured fastest on CPU: for 24 records in 4096 tokens, 70 ms
    # forward+backward against 130-320 ms for padding similar lengths into batched calls,
    # whose gather (index_select) has a slow scatter-add backward. One `split` per input rather
    # than R slices: each slice's backward would build a full-size zero gradient, split's is one cat.
    outs = []
    for q_r, k_r, v_r in zip(q.split(lengths), k.split(lengths), v.split(lengths), strict=True):
        q_r, k_r, v_r = (t.transpose(0, 1).unsqueeze(0) for t in (q_r, k_r, v_r))  # (1, nh, l, hs)
        y = F.scaled_dot_product_attention(q_r, k_r, v_r, is_causal=True)  # (1, nh, l, hs)
        outs.append(y[0].transpose(0, 1))  # (l, nh, hs)
    return torch.cat(outs)  # (N, nh, hs)


def dense_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    """One masked SDPA call over all N tokens: q, k, v (N, nh, hs), mask (N, N) bool -> (N, nh, hs)."""
    q, k, v = (t.transpose(0, 1).unsqueeze(0) for t in (q, k, v))  # (1, nh, N, hs)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (1, nh, N, hs)
    return y[0].transpose(0, 1)
