"""One AdamW training step: our GPT against transformers' GPT2LMHeadModel, same shapes and weights.

Both models get the same config (4 layers, 256 wide, 4 heads, 512 context, 8000 vocabulary,
untied head: transformers' `tie_word_embeddings=False`, so both hold the same parameters),
the same weights (ours copied from theirs by model.hf_import), the same batch of 4 rows of
random tokens with next-token labels, and the same optimizer (torch AdamW, foreach, the
same two decay/no-decay groups). fp32 on the CPU. Neither packs: transformers' GPT-2 cannot,
and unpacked rows are our one-record-per-row path (a packed row costs less attention still,
see bench/attention.py). Our loss is the trainer's (`return_logits=False`: the head in
chunks, model/head_loss.py); theirs materialises all logits, as transformers does.

Time: the median of --repeats steps per model, after one warm-up step each, alternating the
models step by step so drift in the machine's speed hits both alike.

Memory: the peak of *additional* tensor memory during one step (after the warm-up, so the
optimizer state already exists): torch.profiler with profile_memory=True records every CPU
allocation and free made through torch's allocator; the running sum of their sizes in time
order peaks at the step's working set (activations, gradients, temporaries). This counts
tensor bytes exactly and is deterministic, unlike RSS, which glibc's malloc caching blurs.

Ratios are ours / theirs: below 1.0 means ours is faster or smaller (goal <= 0.85 for both).

Example:
  python -m bench.train_step
Output:
  step_ms: ours=346.9 hf=390.4 ratio=0.89
  peak_step_mib: ours=319.8 hf=431.8 ratio=0.74
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from bench._timing import load_report, peak_step_bytes, verdict
from model.gpt import GPT
from model.hf_import import from_hf_gpt2

GOAL_RATIO = 0.85  # issue 16: at most 0.85 of transformers' step time


def build_models(layers: int, width: int, context: int, vocab: int) -> tuple[GPT2LMHeadModel, GPT]:
    """Their GPT-2 with random weights, and ours holding a copy of those weights."""
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=vocab,
        n_positions=context,
        n_embd=width,
        n_layer=layers,
        n_head=width // 64,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=0,
    )
    theirs = GPT2LMHeadModel(config).train()
    return theirs, from_hf_gpt2(theirs).train()


def adamw(model: torch.nn.Module) -> torch.optim.AdamW:
    """GPT.configure_optimizer's groups and settings, for any model."""
    params = list(model.parameters())
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=3e-4, betas=(0.9, 0.95))


def step_fn(model: torch.nn.Module, idx: torch.Tensor) -> Callable[[], float]:
    """One training step on `idx` (B, T): every position learns the next token of its row."""
    optimizer = adamw(model)
    if isinstance(model, GPT):
        targets = torch.roll(idx, -1, dims=1)
        loss_mask = torch.ones_like(idx, dtype=torch.bool)
        loss_mask[:, -1] = False  # the last position has no next token: same count as GPT-2's shift

        def loss() -> torch.Tensor:
            return model(idx, targets=targets, loss_mask=loss_mask, return_logits=False)[1]  # as the trainer calls it
    else:

        def loss() -> torch.Tensor:
            return model(input_ids=idx, labels=idx).loss  # transformers shifts the labels itself

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        value = loss()
        value.backward()
        optimizer.step()
        return value.item()

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)

    theirs, ours = build_models(args.layers, args.width, args.context, args.vocab)
    idx = torch.randint(0, args.vocab, (args.batch, args.context), generator=torch.Generator().manual_seed(1))
    steps = {"ours": step_fn(ours, idx), "hf": step_fn(theirs, idx)}
    first = {name: step() for name, step in steps.items()}  # warm-up; same weights, same loss
    print(
        f"layers={args.layers} width={args.width} context={args.context} vocab={args.vocab} batch={args.batch} "
        f"params={ours.num_params()} loss_ours={first['ours']:.5f} loss_hf={first['hf']:.5f} "
        f"{load_report()}"
    )
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
    mib = {name: peak_step_bytes(step) / 2**20 for name, step in steps.items()}
    time_ratio, memory_ratio = ms["ours"] / ms["hf"], mib["ours"] / mib["hf"]
    print(f"step_ms: ours={ms['ours']:.1f} hf={ms['hf']:.1f} ratio={time_ratio:.2f}")
    print(f"peak_step_mib: ours={mib['ours']:.1f} hf={mib['hf']:.1f} ratio={memory_ratio:.2f}")
    met = time_ratio <= GOAL_RATIO and memory_ratio <= GOAL_RATIO
    print(f"goal: ours/hf <= {GOAL_RATIO:g} {verdict(met)}")
    return 0 if abs(first["ours"] - first["hf"]) < 1e-4 else 1  # different losses: not the same model


if __name__ == "__main__":
    sys.exit(main())
