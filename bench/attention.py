"""Packed attention on the CPU: our `records` backend against one dense masked SDPA call.

One layer of ww2-183m's attention (12 heads x 64) over a 4096-token context packed with
~20 records whose lengths are drawn (seeded) from a log-normal around 160 tokens, the
shape of chat records, until the next one does not fit; the tail is a padding record, as
model.packing.pack_rows lays it out. fp32, whatever threads torch uses (2 on the CI box).

  records  our CPU default: one causal SDPA call per record, cost ~ sum of l_i^2
  dense    one SDPA call with the (T, T) block-diagonal causal mask, cost ~ T^2

Times are medians over --repeats runs after one warm-up each, the two backends taking turns
run by run so that a busy machine slows both alike; ratio = dense / records (goal >= 5).
The first line checks that records and dense agree and shows the load average: many small
calls suffer more than one big call when other processes compete for the two cores (at a
load of ~3 the ratio fell to 2-4), so compare numbers taken on an idle machine.

Example:
  python -m bench.attention
Output:
  records=24 context=4096 heads=12 head_size=64 lengths=[...] max_abs_diff=4.8e-07
  forward: records_ms=18.0 dense_ms=205.5 ratio=11.4
  forward+backward: records_ms=61.6 dense_ms=650.9 ratio=10.6
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

from bench._timing import median_seconds
from model.attention import attend, plan_records
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", type=int, default=4096)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--head-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1939)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per backend")
    args = parser.parse_args(argv)

    lengths = record_lengths(args.context, args.seed)
    cu_seqlens = cu_seqlens_from_lengths(lengths)
    plans = {name: plan_records(cu_seqlens, args.context, name) for name in ("records", "dense")}
    gen = torch.Generator().manual_seed(args.seed)
    q, k, v = (torch.randn(args.context, args.heads, args.head_size, generator=gen) for _ in range(3))
    grad_out = torch.randn(args.context, args.heads, args.head_size, generator=gen)

    kernels = {
        "records": lambda q, k, v: attend(q, k, v, plans["records"]),
        "dense": lambda q, k, v: attend(q, k, v, plans["dense"]),
    }
    with torch.no_grad():
        diff = (kernels["records"](q, k, v) - kernels["dense"](q, k, v)).abs().max().item()
    print(
        f"records={len(lengths)} context={args.context} heads={args.heads} head_size={args.head_size} "
        f"lengths={lengths} max_abs_diff={diff:.1e} load_average={os.getloadavg()[0]:.2f}"
    )

    def forward(kernel):
        def run():
            with torch.no_grad():
                kernel(q, k, v)

        return run

    def forward_backward(kernel):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        return lambda: kernel(*leaves).backward(grad_out)

    ratios = []
    for label, make in (("forward", forward), ("forward+backward", forward_backward)):
        seconds = median_seconds({name: make(kernel) for name, kernel in kernels.items()}, args.repeats)
        ms = {name: 1e3 * value for name, value in seconds.items()}
        ratio = ms["dense"] / ms["records"]
        ratios.append(ratio)
        print(f"{label}: records_ms={ms['records']:.1f} dense_ms={ms['dense']:.1f} ratio={ratio:.1f}")
    print(f"goal: dense/records >= {GOAL_RATIO:g} {'met' if min(ratios) >= GOAL_RATIO else 'MISSED'}")
    return 0 if diff <= 1e-4 else 1  # a wrong answer fails the bench; a slow one is reported


if __name__ == "__main__":
    sys.exit(main())
