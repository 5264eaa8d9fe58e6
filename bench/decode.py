"""Greedy decoding speed: our KV cache against no cache and against transformers' generate.

One random GPT (default 4 layers, 256 wide, 4 heads, 1024 context, 8000 vocabulary, untied
head), a 32-token random prompt, 256 new tokens, greedy, batch 1, fp32 on the CPU, whatever
threads torch uses (2 on the CI box). Three decoders of the same weights:

  cached    model.inference.generate: the prompt once, then one token per step over the cache
  uncached  model.inference.generate(use_cache=False): the whole sequence through GPT.forward
            every step, the cost a cache saves
  hf        transformers' GPT2LMHeadModel.generate (its own DynamicCache) on our weights
            copied over by model.hf_import.to_hf_gpt2

The weights are drawn wider than GPT-2's N(0, 0.02) init so the logits are far apart: at the
init the top two logits can differ by less than float rounding between two implementations,
and greedy paths would part for no real reason. The three token sequences must be identical
before anything is timed (exit 1 otherwise). Times are medians of --repeats runs of the whole
generate call (prefill included) after one warm-up; tokens/s = new tokens / time; ratios are
cached tokens/s over the other's (goal: > 1).

Example:
  python -m bench.decode
Output:
  layers=4 width=256 ... tokens_match=True
  tokens_per_s: cached=... uncached=... hf=...
  ratio: cached/uncached=... cached/hf=...
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import torch

from bench._timing import load_report, median_seconds, verdict
from model.config import GPTConfig
from model.gpt import GPT
from model.hf_import import to_hf_gpt2
from model.inference import generate

GOAL_VS_UNCACHED, GOAL_VS_HF = 8.0, 2.0  # issue 16


def random_gpt(config: GPTConfig, seed: int) -> GPT:
    """A GPT with N(0, 0.3) weights and N(0, 2) embeddings: clearly separated next-token logits."""
    torch.manual_seed(seed)
    model = GPT(config)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.3)
        model.transformer.wte.weight.normal_(0.0, 2.0)
        model.transformer.wpe.weight.normal_(0.0, 2.0)
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--context", type=int, default=1024)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per decoder")
    parser.add_argument("--seed", type=int, default=1939)
    args = parser.parse_args(argv)

    config = GPTConfig(vocab_size=args.vocab, context_length=args.context, n_layer=args.layers, n_head=args.heads,
                       n_embd=args.width)  # fmt: skip
    model = random_gpt(config, args.seed)
    hf_model = to_hf_gpt2(model)
    prompt = torch.randint(0, args.vocab, (args.prompt_tokens,), generator=torch.Generator().manual_seed(args.seed))
    prompt_ids = prompt.tolist()
    new = args.new_tokens

    def ours(use_cache: bool) -> Callable[[], list[int]]:
        return lambda: list(generate(model, prompt_ids, new, use_cache=use_cache))

    def hf() -> list[int]:
        with torch.inference_mode():
            out = hf_model.generate(
                prompt[None], attention_mask=torch.ones_like(prompt[None]), max_new_tokens=new, min_new_tokens=new,
                do_sample=False, pad_token_id=0, eos_token_id=None, use_cache=True,
            )  # fmt: skip
        return out[0, len(prompt_ids) :].tolist()

    runs = {"cached": ours(True), "uncached": ours(False), "hf": hf}
    tokens = {name: run() for name, run in runs.items()}
    match = tokens["cached"] == tokens["uncached"] == tokens["hf"] and len(tokens["cached"]) == new
    print(
        f"layers={args.layers} width={args.width} heads={args.heads} vocab={args.vocab} context={args.context} "
        f"prompt={args.prompt_tokens} new_tokens={new} threads={torch.get_num_threads()} "
        f"{load_report()} distinct_tokens={len(set(tokens['cached']))} tokens_match={match}"
    )
    if not match:
        first = next((i for i, t in enumerate(zip(*tokens.values(), strict=False)) if len(set(t)) > 1), None)
        print(f"greedy tokens differ (first at new token {first}); not timing", file=sys.stderr)
        return 1
    seconds = median_seconds(runs, args.repeats)
    rate = {name: new / s for name, s in seconds.items()}
    print("tokens_per_s: " + " ".join(f"{name}={r:.0f}" for name, r in rate.items()))
    ratios = rate["cached"] / rate["uncached"], rate["cached"] / rate["hf"]
    print(f"ratio: cached/uncached={ratios[0]:.2f} cached/hf={ratios[1]:.2f}")
    met = ratios[0] >= GOAL_VS_UNCACHED and ratios[1] >= GOAL_VS_HF
    print(f"goal: cached/uncached >= {GOAL_VS_UNCACHED:g} and cached/hf >= {GOAL_VS_HF:g} {verdict(met)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
