"""Record-isolated causal attention for packed contexts.

A packed context holds several records back to back. Each token attends causally to the
tokens of its own record only, never across a record boundary (README.md, "Training"). The
boundaries travel as `cu_seqlens`, flash-attn's varlen convention: an
int32 vector [0, l1, l1+l2, ..., N] of cumulative record lengths over the flattened batch
of N = B*T tokens. Tensors use flash-attn's layout too: q, k, v and the output are
(N, nh, hs).

Backends:
  flash    flash-attn's `flash_attn_varlen_func` (CUDA, fp16/bf16). Cost ~ sum of l_i^2.
  records  exact, any device and dtype, the CPU default. `plan_records` picks the cheaper of
           two ways by a cost model (`estimate_costs`), once per forward:
             grouped  records of similar length padded to a common length and batched into
                      one causal SDPA call per group: cost ~ sum of padded l_i^2 plus a
                      fixed cost per call; wins on long contexts of short records;
             rows     one SDPA call per batch with each row's (T, T) block-diagonal causal
                      mask: cost ~ B*T^2 but one call, no gathers; wins on short contexts,
                      where many small calls cost more than the squares they save.
           Unpacked rows (one record of the full row each) take one plain causal call.
  dense    one SDPA call over all N tokens with an explicit (N, N) block-diagonal causal
           mask: O(N^2) time and memory, kept as the obvious reference for the tests.

FlexAttention (torch.nn.attention.flex_attention) with a document mask has no backward on
the CPU in torch 2.13, so it cannot train here; bench/attention.py compares its forward.

`choose_backend` picks flash when it can run, else records; `plan_records` turns
cu_seqlens into a `RecordPlan` once per forward, shared by every layer; `attend` runs it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (PyTorch's own convention)
from torch import Tensor

try:  # optional: only a CUDA box with flash-attn installed has it
    from flash_attn import flash_attn_varlen_func
except ImportError:  # pragma: no cover - depends on the machine
    flash_attn_varlen_func = None

BACKENDS = ("flash", "records", "dense")
RECORDS_PATHS = ("auto", "grouped", "rows")
FLASH_DTYPES = (torch.float16, torch.bfloat16)  # flash-attn's kernels exist for these only

# Cost model of the records backend, in score elements (query x key pairs per head): a masked
# (T, T) call computes every pair, a causal one about half, and each group adds one SDPA call
# with its gathers and copies forward and backward, which cost about CALL_COST pairs in
# forward+backward timings on 2 shared CPU cores (tiny and ww2-33m widths; bench/attention.py
# prints both paths). Fixed costs weigh most at small widths and on a busy machine, so
# CALL_COST is set where tiny's 16 x 512 batches still take one masked call (2.4x faster
# there than the best grouping, at load 14) while a 4096 context of short records is grouped.
CALL_COST = 1_500_000
GROUP_STEPS = (16, 32, 64, 128, 256, 512, 1024)  # candidate padding granularities for grouping


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
class Groups:
    """Records gathered into equal-length groups: group g is `counts[g]` records padded to `lengths[g]`."""

    lengths: tuple[int, ...]  # padded length of each group
    counts: tuple[int, ...]  # records in each group
    gather: Tensor  # (P,) int64: for each padded slot, the token it copies (padding copies its record's first)
    scatter: Tensor  # (N,) int64: for each token, its slot among the P padded ones


@dataclass(frozen=True)
class RecordPlan:
    """One batch's record boundaries, prepared once per forward and shared by all layers."""

    backend: str  # one of BACKENDS
    cu_seqlens: Tensor  # (R+1,) int32 on the tokens' device, [0, l1, l1+l2, ..., N]
    lengths: tuple[int, ...]  # (R,) record lengths as Python ints
    max_seqlen: int  # the longest record, which flash-attn sizes its work by
    path: str = ""  # records backend: "uniform", "grouped" or "rows"
    row_length: int = 0  # T, the tokens per row ("uniform" and "rows" paths)
    dense_mask: Tensor | None = None  # (N, N) bool for dense, (B, 1, T, T) for rows; True = may attend
    groups: Groups | None = None  # the grouped path's layout
    deterministic: bool = False  # flash: a deterministic backward (its default is not; see attend)


def estimate_costs(lengths: tuple[int, ...], row_length: int) -> dict[str, tuple[float, int]]:
    """The records backend's cost model: {"rows": (cost, 0), "grouped": (cost, best step)}.

    rows pays every pair of each (T, T) row once; grouped pays half of each padded group's
    square (causal) plus CALL_COST per group, at the padding step that costs least. "rows" is
    left out when a record crosses a row boundary (it cannot be masked within one row)."""
    costs: dict[str, tuple[float, int]] = {}
    ends = np.cumsum(lengths)
    starts = ends - np.asarray(lengths)
    if row_length and np.all(starts // row_length == (ends - 1) // row_length):
        costs["rows"] = (float(ends[-1]) * row_length, 0)
    best = (math.inf, 0)
    array = np.asarray(lengths, dtype=np.float64)
    for step in GROUP_STEPS:
        padded = np.ceil(array / step) * step
        values, counts = np.unique(padded, return_counts=True)
        cost = 0.5 * float((counts * values**2).sum()) + CALL_COST * len(values)
        best = min(best, (cost, step))
    costs["grouped"] = best
    return costs


def group_records(lengths: tuple[int, ...], step: int, device: torch.device) -> Groups:
    """Records padded up to a multiple of `step` and grouped by that length (see `Groups`)."""
    array = np.asarray(lengths, dtype=np.int64)
    starts = np.cumsum(array) - array
    padded = -(-array // step) * step
    order = np.argsort(padded, kind="stable")  # records of one padded length side by side
    values, counts = np.unique(padded[order], return_counts=True)
    gather_parts, scatter = [], np.empty(int(array.sum()), dtype=np.int64)
    slot = 0
    for r in order:
        offsets = np.arange(padded[r])
        gather_parts.append(starts[r] + np.where(offsets < array[r], offsets, 0))  # pad: the record's first token
        scatter[starts[r] : starts[r] + array[r]] = slot + offsets[: array[r]]
        slot += padded[r]
    gather = torch.from_numpy(np.concatenate(gather_parts)).to(device)
    return Groups(tuple(values.tolist()), tuple(counts.tolist()), gather, torch.from_numpy(scatter).to(device))


@torch.compiler.disable  # reads tensor values into Python ints: keep it out of compiled graphs
def plan_records(
    cu_seqlens: Tensor,
    total: int,
    backend: str,
    device: torch.device | str | None = None,
    row_length: int = 0,
    path: str = "auto",
    deterministic: bool = False,
) -> RecordPlan:
    """Check cu_seqlens against the N=`total` tokens and precompute what `backend` needs.

    row_length: T, the tokens per row of the batch (0: the N tokens are one row). path: the
    records backend's way, "auto" (the cost model's pick), "grouped" or "rows" (tests, benches). deterministic: flash-attn's deterministic backward.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; known: {', '.join(BACKENDS)}")
    if path not in RECORDS_PATHS:
        raise ValueError(f"unknown records path {path!r}; known: {', '.join(RECORDS_PATHS)}")
    if cu_seqlens.dim() != 1 or cu_seqlens.numel() < 2:
        raise ValueError(f"cu_seqlens must be 1-D with at least 2 entries, got shape {tuple(cu_seqlens.shape)}")
    bounds = cu_seqlens.tolist()
    lengths = tuple(end - start for start, end in zip(bounds[:-1], bounds[1:], strict=True))
    if bounds[0] != 0 or bounds[-1] != total or min(lengths) < 1:
        raise ValueError(f"cu_seqlens must rise strictly from 0 to {total} (the token count), got {bounds}")
    row_length = row_length or total
    if total % row_length:
        raise ValueError(f"{total} tokens do not split into rows of {row_length}")
    device = cu_seqlens.device if device is None else torch.device(device)
    cu_seqlens = cu_seqlens.to(device=device, dtype=torch.int32)  # flash-attn insists on int32
    plan = RecordPlan(backend, cu_seqlens, lengths, max(lengths), row_length=row_length, deterministic=deterministic)
    if backend == "dense":
        record = record_ids(lengths, device)
        return _replace(plan, dense_mask=(record[:, None] == record[None, :]).tril())  # same record, not future
    if backend == "flash":
        return plan
    if path == "auto" and set(lengths) == {row_length}:
        return _replace(plan, path="uniform")
    costs = estimate_costs(lengths, row_length)
    if path == "rows" and "rows" not in costs:
        raise ValueError("the rows path needs every record inside one row; a record crosses a row boundary")
    if path == "auto":
        path = min(costs, key=lambda name: costs[name][0])
    if path == "rows":
        record = record_ids(lengths, device).view(-1, row_length)  # (B, T)
        mask = (record[:, :, None] == record[:, None, :]).tril()  # (B, T, T)
        return _replace(plan, path="rows", dense_mask=mask[:, None])
    return _replace(plan, path="grouped", groups=group_records(lengths, costs["grouped"][1], device))


def record_ids(lengths: tuple[int, ...], device: torch.device) -> Tensor:
    """(N,) the index of each token's record."""
    return torch.repeat_interleave(torch.arange(len(lengths), device=device), torch.tensor(lengths, device=device))


def _replace(plan: RecordPlan, **changes) -> RecordPlan:
    return RecordPlan(**{**plan.__dict__, **changes})


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
    if plan.backend == "dense":
        return rows_attention(q, k, v, plan.dense_mask[None, None], q.size(0))
    if plan.path == "uniform":
        return uniform_attention(q, k, v, plan.row_length)
    if plan.path == "rows":
        return rows_attention(q, k, v, plan.dense_mask, plan.row_length)
    return grouped_attention(q, k, v, plan.groups)


def uniform_attention(q: Tensor, k: Tensor, v: Tensor, length: int) -> Tensor:
    """Records all of `length` tokens, back to back: one batched causal call. (N, nh, hs) -> (N, nh, hs)."""
    n, nh, hs = q.shape
    q, k, v = (t.view(n // length, length, nh, hs).transpose(1, 2) for t in (q, k, v))  # (R, nh, l, hs)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (R, nh, l, hs)
    return y.transpose(1, 2).reshape(n, nh, hs)


def rows_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor, length: int) -> Tensor:
    """One masked call over rows of `length` tokens: q, k, v (N, nh, hs), mask (B, 1, T, T) -> (N, nh, hs)."""
    n, nh, hs = q.shape
    q, k, v = (t.view(n // length, length, nh, hs).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, nh, T, hs)
    return y.transpose(1, 2).reshape(n, nh, hs)


@torch.compiler.disable  # a loop over data-dependent groups: one graph per layout otherwise
def grouped_attention(q: Tensor, k: Tensor, v: Tensor, groups: Groups) -> Tensor:
    """One causal call per group of equal padded length: q, k, v (N, nh, hs) -> (N, nh, hs).

    Padding sits after each record's tokens, so causality hides it from them: their outputs are
    exact, and the padded slots' outputs are dropped (and get zero gradient)."""
    n, nh, hs = q.shape
    padded = [_Gather.apply(t, groups.gather, groups.scatter) for t in (q, k, v)]  # (P, nh, hs) each
    outs, slot = [], 0
    for length, count in zip(groups.lengths, groups.counts, strict=True):
        size = length * count
        q_g, k_g, v_g = (t[slot : slot + size].view(count, length, nh, hs).transpose(1, 2) for t in padded)
        y = F.scaled_dot_product_attention(q_g, k_g, v_g, is_causal=True)  # (count, nh, length, hs)
        outs.append(y.transpose(1, 2).reshape(size, nh, hs))
        slot += size
    return _Scatter.apply(torch.cat(outs), groups.scatter)  # (N, nh, hs)


class _Gather(torch.autograd.Function):
    """x[gather] whose backward is a gather too (grad[scatter]), not index_select's slow scatter-add.

    Exact because every slot that is not a token's own (padding) gets zero gradient: nothing
    real attends to it, and its own output is dropped."""

    @staticmethod
    def forward(ctx, x: Tensor, gather: Tensor, scatter: Tensor) -> Tensor:
        ctx.save_for_backward(scatter)
        return x.index_select(0, gather)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        (scatter,) = ctx.saved_tensors
        return grad.index_select(0, scatter), None, None


class _Scatter(torch.autograd.Function):
    """The tokens' own slots of the padded groups, y[scatter]: (P, ...) -> (N, ...); padding gets zero gradient."""

    @staticmethod
    def forward(ctx, y: Tensor, scatter: Tensor) -> Tensor:
        ctx.save_for_backward(scatter)
        ctx.padded = y.size(0)
        return y.index_select(0, scatter)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (scatter,) = ctx.saved_tensors
        full = grad.new_zeros(ctx.padded, *grad.shape[1:])
        return full.index_copy_(0, scatter, grad), None
