"""Packed attention on the CPU: our `records` backend's paths against dense masked SDPA and FlexAttention.

One layer of ww2-183m's attention (12 heads x 64) over a 4096-token context packed with
~20 records whose lengths are drawn (seeded) from a log-normal around 160 tokens, the
shape of chat records, until the next one does not fit; the tail is a padding record, as
model.packing.pack_rows lays it out. fp32, whatever threads torch uses (2 on the CI box).

  records  our CPU default: the path model/attention.py's cost model picks (printed)
  grouped  records of similar length padded and batched, one causal SDPA call per group
  rows     one SDPA call with each row's (T, T) block-diagonal causal mask (here one row)
  dense    the (N, N) masked reference (the same work as rows for one row)
  flex     torch.nn.attention.flex_attention with a document mask (a BlockMask that skips
           the blocks no record covers), forward only: torch 2.13 has no FlexAttention
           backward on the CPU, so it cannot train here. `--flex compiled` runs it under
           torch.compile (minutes of compiling on 2 cores); `--flex eager` unfused.

Times are medians over --repeats runs after one warm-up each, the ways taking turns run by
run so that a busy machine slows all alike; ratio = dense / records (goal >= 5) and
flex / records (goal >= 1, forward). The first line checks that every way agrees and shows
the load average: many small calls suffer more than one big call when other processes
compete for the two cores, so a figure from a busy machine is marked UNRELIABLE.

Example:
  python -m bench.attention --flex compiled
Output:
  records=24 context=4096 heads=12 head_size=64 path=grouped lengths=[...] max_abs_diff=7.2e-07 load_average=...
  forward: records_ms=... grouped_ms=... rows_ms=... dense_ms=... flex_ms=... ratio(dense/records)=... ratio(flex/records)=...
  forward+backward: records_ms=... grouped_ms=... rows_ms=... dense_ms=... ratio(dense/records)=...
  goal: dense/records >= 5 and flex/records >= 1 met
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

from bench._timing import load_report, median_seconds, verdict
from model.attention import attend, plan_records, record_ids
from model.packing import cu_seqlens_from_lengths

GOAL_RATIO = 5.0


def record_lengths(context: int, seed: int, median: float = 160.0, sigma: float = 0.65) -> list[int]:
    """Log-normal record lengths (at least 8 tokens) filling one context, plus a padding tail."""
    rng = np.random.default_rng(seed)
    lengths: list[int] = []
    while True:
        length = max(8, int(rng.lognormal(np.log(median), sigma)))
        if sum(lengths) + length > context:
            break
        lengths.append(length)
    if (tail := context - sum(lengths)) > 0:
        lengths.append(tail)
    return lengths


def flex_kernel(lengths: list[int], mode: str):
    """FlexAttention over one row with a document mask, in our (N, nh, hs) layout."""
    record = record_ids(tuple(lengths), torch.device("cpu"))
    context = len(record)

    def same_record_causal(b, h, q_idx, kv_idx):
        return (record[q_idx] == record[kv_idx]) & (q_idx >= kv_idx)

    block_mask = create_block_mask(same_record_causal, 1, 1, context, context, device="cpu")
    run = torch.compile(flex_attention, dynamic=False) if mode == "compiled" else flex_attention

    def kernel(q, k, v):
        q, k, v = (t.transpose(0, 1).unsqueeze(0) for t in (q, k, v))  # (1, nh, N, hs)
        return run(q, k, v, block_mask=block_mask)[0].transpose(0, 1)

    return kernel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--context", type=int, default=4096)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--head-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1939)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per way")
    parser.add_argument("--flex", choices=("off", "eager", "compiled"), default="eager")
    args = parser.parse_args(argv)

    lengths = record_lengths(args.context, args.seed)
    cu_seqlens = cu_seqlens_from_lengths(lengths)
    plans = {
        "records": plan_records(cu_seqlens, args.context, "records"),
        "grouped": plan_records(cu_seqlens, args.context, "records", path="grouped"),
        "rows": plan_records(cu_seqlens, args.context, "records", path="rows"),
        "dense": plan_records(cu_seqlens, args.context, "dense"),
    }
    gen = torch.Generator().manual_seed(args.seed)
    q, k, v = (torch.randn(args.context, args.heads, args.head_size, generator=gen) for _ in range(3))
    grad_out = torch.randn(args.context, args.heads, args.head_size, generator=gen)

    kernels = {name: (lambda q, k, v, plan=plan: attend(q, k, v, plan)) for name, plan in plans.items()}
    if args.flex != "off":
        kernels["flex"] = flex_kernel(lengths, args.flex)
    with torch.no_grad():
        reference = kernels["dense"](q, k, v)
        diff = max((kernel(q, k, v) - reference).abs().max().item() for kernel in kernels.values())
    print(
        f"records={len(lengths)} context={args.context} heads={args.heads} head_size={args.head_size} "
        f"path={plans['records'].path} lengths={lengths} max_abs_diff={diff:.1e} {load_report()}"
    )

    def forward(kernel):
        def run():
            with torch.no_grad():
                kernel(q, k, v)

        return run

    def forward_backward(kernel):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        return lambda: kernel(*leaves).backward(grad_out)

    met = True
    for label, make in (("forward", forward), ("forward+backward", forward_backward)):
        ways = {name: kernel for name, kernel in kernels.items() if name != "flex" or label == "forward"}
        ms = {
            name: 1e3 * s for name, s in median_seconds({n: make(kr) for n, kr in ways.items()}, args.repeats).items()
        }
        ratios = {f"{name}/records": ms[name] / ms["records"] for name in ("dense", "flex") if name in ms}
        met &= ratios["dense/records"] >= GOAL_RATIO and ratios.get("flex/records", 1.0) >= 1.0
        print(f"{label}: " + " ".join(f"{name}_ms={value:.1f}" for name, value in ms.items()) + " "
              + " ".join(f"ratio({name})={value:.1f}" for name, value in ratios.items()))  # fmt: skip
    print(f"goal: dense/records >= {GOAL_RATIO:g} and flex/records >= 1 {verdict(met)}")
    return 0 if diff <= 1e-4 else 1  # a wrong answer fails the bench; a slow one is reported


if __name__ == "__main__":
    sys.exit(main())
