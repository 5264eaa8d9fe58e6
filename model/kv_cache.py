"""Key/value cache for incremental decoding: the prompt runs once, then one token at a time.

Training attends over packed records (model/attention.py); decoding does not need that. Each
batch row holds one sequence, all rows the same length, so the cache is a dense tensor per
layer and attention over it is a plain `F.scaled_dot_product_attention` call. `GPT.forward_decode`
(model/gpt.py) runs the tokens after `cache.length` through every layer, each layer appending
its new keys and values here, then advances the length once for all layers.

The cache is allocated once at its full size (`max_length` positions) and filled in place, so
a decode step copies one position per layer (keys and values in one copy) instead of
concatenating the whole history. Memory: 2 * n_layer * batch * max_length * n_embd elements,
e.g. ww2-183m at its 4096 context in fp32: 453 MB per row.

Example:
    cache = model.new_cache(batch_size=1, max_length=len(prompt) + 64)
    logits = model.forward_decode(prompt_ids, cache)     # prefill: (1, P, vocab)
    logits = model.forward_decode(next_ids, cache)       # one step: (1, 1, vocab)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 (PyTorch's own convention)
from torch import Tensor

from model.config import GPTConfig


class KVCache:
    """Per-layer keys and values of the positions decoded so far, one (L, 2, B, nh, max_length, hs) tensor."""

    def __init__(
        self,
        config: GPTConfig,
        batch_size: int = 1,
        max_length: int | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        max_length = config.context_length if max_length is None else max_length
        if not 1 <= max_length <= config.context_length:
            raise ValueError(f"cache max_length must be in 1..{config.context_length}, got {max_length}")
        shape = (config.n_layer, 2, batch_size, config.n_head, max_length, config.head_size)
        self.kv = torch.zeros(shape, device=device, dtype=dtype)  # [:, 0] keys, [:, 1] values
        self.length = 0  # positions filled, the same in every layer and row

    @property
    def max_length(self) -> int:
        return self.kv.size(4)

    def append(self, layer: int, kv: Tensor) -> tuple[Tensor, Tensor]:
        """Store `layer`'s keys and values for the next T positions, kv (2, B, nh, T, hs), and
        return that layer's keys and values for every position so far, (B, nh, length + T, hs) views."""
        t = kv.size(3)
        if self.length + t > self.max_length:
            raise ValueError(f"KV cache full: {self.length} + {t} positions exceed max_length={self.max_length}")
        layer_kv = self.kv[layer]  # (2, B, nh, max_length, hs)
        layer_kv.narrow(3, self.length, t).copy_(kv)
        k, v = layer_kv.narrow(3, 0, self.length + t).unbind(0)
        return k, v

    def advance(self, steps: int) -> None:
        """Count `steps` more positions as filled; called once per forward, after the last layer."""
        self.length += steps

    def reset(self) -> None:
        """Forget every position (the buffers are kept and overwritten)."""
        self.length = 0


def cached_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Causal attention of the last T positions over all of them: q (B, nh, T, hs), k/v
    (B, nh, S, hs) with S >= T, the queries being positions S-T..S-1 -> (B, nh, T, hs).

    The softmax scale is 1/sqrt(hs), as in GPT-2 and the training backends.
    """
    t, s = q.size(2), k.size(2)
    if t == 1:  # one new token sees every cached one: no mask at all
        return F.scaled_dot_product_attention(q, k, v)
    if t == s:  # prefill from an empty cache: ordinary causal attention
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    # A chunk after a non-empty cache. SDPA's is_causal aligns the mask top-left when T != S,
    # which would hide cached keys from the chunk, so spell out the bottom-right-aligned mask.
    mask = torch.ones(t, s, dtype=torch.bool, device=q.device).tril(diagonal=s - t)  # (T, S) True = may attend
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
