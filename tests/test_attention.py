"""Attention backends: each agrees with a naive per-record reference and with the others."""

from __future__ import annotations

import math

import pytest
import torch

from model.attention import attend, choose_backend, estimate_costs, flash_unavailable_reason, plan_records
from model.packing import cu_seqlens_from_lengths

pytestmark = pytest.mark.usefixtures("one_torch_thread")


LAYOUTS = {
    "mixed": [37, 5, 60, 1, 17],
    "uniform": [32, 32, 32],  # the one-record-per-row fast path
    "single": [90],
}


def naive_attention(q, k, v, lengths):
    """softmax(q k^T / sqrt(hs) + causal mask) v, record by record, written out longhand."""
    outs, start = [], 0
    for length in lengths:
        qr, kr, vr = (t[start : start + length].transpose(0, 1) for t in (q, k, v))  # (nh, l, hs)
        scores = qr @ kr.transpose(-2, -1) / math.sqrt(q.size(-1))  # (nh, l, l)
        future = torch.ones(length, length, dtype=torch.bool).triu(1)
        outs.append((scores.masked_fill(future, float("-inf")).softmax(-1) @ vr).transpose(0, 1))
        start += length
    return torch.cat(outs)


def qkv(lengths, nh=4, hs=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    n = sum(lengths)
    return [torch.randn(n, nh, hs, generator=gen, requires_grad=True) for _ in range(3)]


# (backend, records path): every way the CPU can compute record-isolated attention
WAYS = [("records", "auto"), ("records", "grouped"), ("records", "rows"), ("dense", "auto")]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("backend", "path"), WAYS)
def test_backend_matches_naive_reference(backend, path, layout):
    lengths = LAYOUTS[layout]
    q, k, v = qkv(lengths)
    plan = plan_records(cu_seqlens_from_lengths(lengths), sum(lengths), backend, path=path)
    assert (attend(q, k, v, plan) - naive_attention(q, k, v, lengths)).abs().max() <= 1e-5


@pytest.mark.parametrize("layout", LAYOUTS)
def test_records_paths_and_dense_agree_forward_and_backward(layout):
    lengths = LAYOUTS[layout]
    results = {}
    for backend, path in WAYS:
        q, k, v = qkv(lengths)
        out = attend(q, k, v, plan_records(cu_seqlens_from_lengths(lengths), sum(lengths), backend, path=path))
        out.pow(2).sum().backward()
        results[backend, path] = [out.detach(), q.grad, k.grad, v.grad]
    for way in WAYS[:-1]:
        for ours, reference in zip(results[way], results["dense", "auto"], strict=True):
            assert (ours - reference).abs().max() <= 1e-5, way


def test_rows_of_a_batch_are_masked_apart():
    """Two rows of 64 tokens: the rows path masks each row on its own, and agrees with dense."""
    lengths = [37, 27, 10, 50, 4]  # row 0: 37 + 27, row 1: 10 + 50 + 4
    cu = cu_seqlens_from_lengths(lengths)
    q, k, v = qkv(lengths)
    rows = plan_records(cu, 128, "records", row_length=64, path="rows")
    assert rows.dense_mask.shape == (2, 1, 64, 64)
    assert (attend(q, k, v, rows) - naive_attention(q, k, v, lengths)).abs().max() <= 1e-5


def test_the_cost_model_picks_rows_for_short_contexts_and_groups_for_long_ones():
    short = [70, 90, 60, 120, 100, 72]  # one 512-token row: six records
    assert plan_records(cu_seqlens_from_lengths(short), 512, "records").path == "rows"
    long = [70, 90, 60, 120, 100] * 8 + [576]  # one 4096-token row of 41 records
    costs = estimate_costs(tuple(long), 4096)
    assert costs["grouped"][0] < costs["rows"][0] / 4  # the squares saved outweigh the calls
    plan = plan_records(cu_seqlens_from_lengths(long), 4096, "records")
    assert plan.path == "grouped" and sum(plan.groups.counts) == len(long)
    uniform = plan_records(cu_seqlens_from_lengths([64, 64]), 128, "records", row_length=64)
    assert uniform.path == "uniform"  # one record per row: a plain causal call


def test_a_record_across_rows_rules_out_the_rows_path():
    cu = cu_seqlens_from_lengths([40, 48, 40])  # the middle record straddles rows of 64
    assert "rows" not in estimate_costs((40, 48, 40), 64)
    assert plan_records(cu, 128, "records", row_length=64).path == "grouped"
    with pytest.raises(ValueError, match="crosses a row boundary"):
        plan_records(cu, 128, "records", row_length=64, path="rows")
    with pytest.raises(ValueError, match="do not split into rows of 60"):
        plan_records(cu, 128, "records", row_length=60)
    with pytest.raises(ValueError, match="unknown records path 'loop'"):
        plan_records(cu, 128, "records", path="loop")


def test_auto_chooses_records_on_cpu_and_names_unknown_backends():
    assert choose_backend("cpu", torch.float32) == "records"
    assert choose_backend("cpu", torch.float32, "dense") == "dense"
    with pytest.raises(ValueError, match="unknown attention backend 'sparse'"):
        choose_backend("cpu", torch.float32, "sparse")
    with pytest.raises(RuntimeError, match="'flash' cannot run"):
        choose_backend("cpu", torch.bfloat16, "flash")


@pytest.mark.parametrize(
    ("bounds", "total"),
    [([0, 5, 5, 10], 10), ([1, 10], 10), ([0, 4, 9], 10), ([0], 0)],
    ids=["empty-record", "not-from-zero", "short-of-total", "no-records"],
)
def test_bad_cu_seqlens_are_refused(bounds, total):
    with pytest.raises(ValueError, match="cu_seqlens"):
        plan_records(torch.tensor(bounds, dtype=torch.int32), total, "records")


FLASH_SKIP = flash_unavailable_reason(torch.device("cuda"), torch.bfloat16) if torch.cuda.is_available() else None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the flash backend needs one")
@pytest.mark.skipif(FLASH_SKIP is not None, reason=f"flash backend unavailable: {FLASH_SKIP}")
def test_flash_matches_records_on_cuda():
    lengths = [300, 17, 1, 511, 195]
    q, k, v = (t.detach().cuda().to(torch.bfloat16) for t in qkv(lengths, nh=12, hs=64))
    cu = cu_seqlens_from_lengths(lengths, device="cuda")
    flash = attend(q, k, v, plan_records(cu, sum(lengths), "flash"))
    records = attend(q, k, v, plan_records(cu, sum(lengths), "records"))
    assert (flash.float() - records.float()).abs().max() <= 2e-2  # bf16 rounding, different kernels
