"""One training step at real scale on the CPU: peak memory and FLOP utilisation.

The `ww2-33m` variant (4 layers x 384, 32,000 vocabulary, 4096 context) takes AdamW training
steps (forward, backward, optimizer step) on one 4096-token context packed with records whose
lengths are drawn (seeded) around 160 tokens (bench/attention.py's mix), the last two thirds
of each record under the loss mask, as an answer after its question. fp32, the default
attention backend (`records` on the CPU: model/attention.py picks its path), the training
loss path (`return_logits=False`: the head in chunks, model/head_loss.py).

  peak_step_mib   peak additional tensor memory during one step, after a warm-up step so the
                  optimizer state exists (bench/_timing.py: every allocation of torch's allocator)
  utilisation     model FLOP/s over the fp32 matmul rate of this machine measured in the same
                  run ((2048 x 2048) @ (2048 x 2048), the fastest of MATMUL_RUNS before and
                  MATMUL_RUNS after the steps: the machine's peak, since a median of three
                  once caught a slow spell and gave utilisation 1.26): model FLOP/s =
                  6 x non-embedding parameters x tokens per second (Kaplan et al. 2020, the
                  usual training-FLOP count; the embeddings are lookups, attention's own
                  score work is left out, and the head runs on the counted positions only, so
                  this counts more head FLOPs than are done). Goal >= 0.5.

Example:
  python -m bench.real_scale
Output:
  variant=ww2-33m context=4096 records=25 counted=2718 params=33.25M ... load_average=... cores=2
  matmul_gflops=... step_s=... tokens_per_s=... model_gflops=... utilisation=0.41
  peak_step_mib=...
  goal: utilisation >= 0.5 MISSED
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from bench._timing import load_report, peak_step_bytes, verdict
from bench.attention import record_lengths
from model.gpt import GPT
from model.packing import cu_seqlens_from_lengths, record_targets
from model.variants import load_variant

GOAL_UTILISATION = 0.5
MATMUL_SIZE = 2048
MATMUL_RUNS = 10


def matmul_gflops(runs: int = MATMUL_RUNS) -> float:
    """This machine's peak fp32 matmul rate now, in GFLOP/s (2 n^3 per n x n product): the
    fastest of `runs`, so a slow spell on a shared machine cannot inflate the utilisation."""
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(MATMUL_SIZE, MATMUL_SIZE, generator=gen) for _ in range(2))
    a @ b  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * MATMUL_SIZE**3 / min(times) / 1e9


def packed_context(context: int, vocab: int, seed: int) -> dict[str, torch.Tensor]:
    """GPT.forward's training arguments for one context of records back to back."""
    lengths = record_lengths(context, seed)
    cu_seqlens = cu_seqlens_from_lengths(lengths)
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, vocab, (1, context), generator=gen)
    token_mask = torch.zeros(1, context, dtype=torch.bool)
    for start, length in zip(cu_seqlens[:-1].tolist(), lengths, strict=True):
        token_mask[0, start + length // 3 : start + length] = True  # the answer after the question
    targets, loss_mask = record_targets(idx, token_mask, cu_seqlens)
    return {"idx": idx, "targets": targets, "loss_mask": loss_mask, "cu_seqlens": cu_seqlens}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="ww2-33m")
    parser.add_argument("--repeats", type=int, default=3, help="timed training steps")
    parser.add_argument("--seed", type=int, default=1939)
    args = parser.parse_args(argv)

    config = load_variant(args.variant)
    torch.manual_seed(0)
    model = GPT(config)
    optimizer = model.configure_optimizer(weight_decay=0.1, lr=1e-4)
    batch = packed_context(config.context_length, config.vocab_size, args.seed)

    def step() -> None:
        _, loss = model(**batch, return_logits=False)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: optimizer state, allocator, kernel choice
    flops_params = model.num_params(exclude_embeddings=True)
    print(f"variant={args.variant} context={config.context_length} records={len(batch['cu_seqlens']) - 1} "
          f"counted={int(batch['loss_mask'].sum())} params={model.num_params() / 1e6:.2f}M "
          f"non_embedding={flops_params / 1e6:.2f}M threads={torch.get_num_threads()} {load_report()}")  # fmt: skip
    rate = matmul_gflops()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    rate = max(rate, matmul_gflops())
    step_s = statistics.median(times)
    tokens_per_s = config.context_length / step_s
    model_gflops = 6 * flops_params * tokens_per_s / 1e9
    utilisation = model_gflops / rate
    print(f"matmul_gflops={rate:.1f} step_s={step_s:.2f} tokens_per_s={tokens_per_s:.0f} "
          f"model_gflops={model_gflops:.1f} utilisation={utilisation:.2f}")  # fmt: skip
    print(f"peak_step_mib={peak_step_bytes(step) / 2**20:.0f}")
    print(f"goal: utilisation >= {GOAL_UTILISATION:g} {verdict(utilisation >= GOAL_UTILISATION)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
