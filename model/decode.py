"""The decode path: GPT.forward's arithmetic for tokens that continue a KV cache, made cheap per token.

One decoding step of a small model is a few MFLOPs: on the CPU its time goes to streaming
the weights from memory and to torch's per-call overhead, not to arithmetic. So the step
(`decode`) is a flat loop over `DecodePlan`'s tensors, the blocks of model/gpt.py written
out with functional calls: no module calls, attribute walks, position tensors or masks per
token, 2-D activations (B*T, C), keys and values stored in one copy per layer
(model/kv_cache.py), and SDPA without a mask for one new token. The plan is checked against
the weights when a sequence starts (rebuilt only if they changed) and reused for every token.

Weight layout. How fast MKL streams a weight matrix for one activation row depends on the
length of its contiguous rows: on 2 shared EPYC cores, out of cache, F.linear over
nn.Linear's (out, in) layout reads a (768, 256) or (8000, 256) weight at ~6 GB/s but the same
weight stored (in, out) at ~12-17 GB/s, while a (256, 1024) weight is fast as it is (~11 GB/s,
~6 transposed) and a square one the same either way. So on the CPU every Linear with
out_features > in_features (the fused QKV projection, the MLP's up-projection, the head)
decodes with an (out, in)-shaped view of a copy stored (in, out), which F.linear takes as it
is; the others use their own weights. The copies live on the model (`PlanCache`) until a
weight changes (its storage or version counter): that much more memory while a model decodes
(+400 MB for ww2-183m in fp32). On other devices (CUDA) the plan holds the module weights.
Like the cache's in-place writes, the copies make this a forward-only path (no backward).

`GPT.forward_decode` (model/gpt.py) is the entry point; tests/test_inference.py checks the
logits against `GPT.forward`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 (PyTorch's own convention)
from torch import Tensor

from model.kv_cache import KVCache, cached_attention


class LayerWeights(NamedTuple):
    """One block's tensors in the order `decode` uses them (biases None when config.bias is off)."""

    ln_1_weight: Tensor
    ln_1_bias: Tensor | None
    attn_weight: Tensor  # (3C, C): q, k, v of all heads, one matmul
    attn_bias: Tensor | None
    attn_proj_weight: Tensor  # (C, C)
    attn_proj_bias: Tensor | None
    ln_2_weight: Tensor
    ln_2_bias: Tensor | None
    fc_weight: Tensor  # (4C, C)
    fc_bias: Tensor | None
    mlp_proj_weight: Tensor  # (C, 4C)
    mlp_proj_bias: Tensor | None


class DecodePlan(NamedTuple):
    """Every tensor a decode step reads, gathered once per sequence."""

    wte: Tensor  # (vocab, C)
    wpe: Tensor  # (context_length, C)
    layers: tuple[LayerWeights, ...]
    ln_f_weight: Tensor
    ln_f_bias: Tensor | None
    head: Tensor  # (vocab, C)
    n_head: int
    eps: float


def build_plan(model: nn.Module, copy_layout: bool) -> DecodePlan:
    """The plan of a GPT (model/gpt.py); `copy_layout`: the wide Linears as (in, out)-stored copies."""

    def weight(linear: nn.Linear) -> Tensor:
        w = linear.weight
        if copy_layout and linear.out_features > linear.in_features:
            return w.detach().t().contiguous().t()  # (out, in) view of an (in, out) copy
        return w

    def both(module: nn.Module) -> tuple[Tensor, Tensor | None]:
        return (weight(module) if isinstance(module, nn.Linear) else module.weight), module.bias

    def layer(block: nn.Module) -> LayerWeights:
        modules = (block.ln_1, block.attn.c_attn, block.attn.c_proj, block.ln_2, block.mlp.c_fc, block.mlp.c_proj)
        return LayerWeights(*(tensor for module in modules for tensor in both(module)))

    layers = tuple(layer(block) for block in model.transformer.h)
    ln_f = model.transformer.ln_f
    return DecodePlan(
        model.transformer.wte.weight, model.transformer.wpe.weight, layers, ln_f.weight, ln_f.bias,
        weight(model.lm_head), model.config.n_head, model.config.layer_norm_eps,
    )  # fmt: skip


class PlanCache:
    """A model's DecodePlan, rebuilt when asked to check and a weight has changed since."""

    def __init__(self) -> None:
        self._key: tuple = ()
        self._plan: DecodePlan | None = None

    def get(self, model: nn.Module, refresh: bool = True) -> DecodePlan:
        """The plan for `model`; `refresh`: first check it against the weights (False: trust it)."""
        if self._plan is not None and not (refresh and self._key != weights_key(model)):
            return self._plan
        self._plan = None  # free stale copies before making new ones
        with torch.inference_mode(False):  # plain tensors, usable outside inference mode too
            self._plan = build_plan(model, copy_layout=next(model.parameters()).device.type == "cpu")
        self._key = weights_key(model)
        return self._plan


def weights_key(model: nn.Module) -> tuple:
    """Changes when any parameter does: an optimizer step or load_state_dict bumps its version
    counter, .to() or `.data =` moves its storage."""
    return tuple((p.data_ptr(), p._version) for p in model.parameters())


def decode(plan: DecodePlan, idx: Tensor, cache: KVCache, last_only: bool = False) -> Tensor:
    """Logits (B, T, vocab), or (B, 1, vocab) with `last_only`, for idx (B, T) at positions
    cache.length .. cache.length+T-1; fills the cache at those positions and advances it."""
    b, t = idx.shape
    c = plan.wte.size(1)
    nh = plan.n_head
    start = cache.length
    x = (F.embedding(idx, plan.wte) + plan.wpe[start : start + t]).view(b * t, c)  # (B*T, C)
    for layer, w in enumerate(plan.layers):
        h = F.layer_norm(x, (c,), w.ln_1_weight, w.ln_1_bias, plan.eps)
        qkv = F.linear(h, w.attn_weight, w.attn_bias).view(b, t, 3, nh, c // nh).permute(2, 0, 3, 1, 4)
        k, v = cache.append(layer, qkv[1:])  # (B, nh, S, hs): cached positions, then these T
        y = cached_attention(qkv[0], k, v)  # (B, nh, T, hs)
        x = x + F.linear(y.transpose(1, 2).reshape(b * t, c), w.attn_proj_weight, w.attn_proj_bias)
        h = F.layer_norm(x, (c,), w.ln_2_weight, w.ln_2_bias, plan.eps)
        h = F.gelu(F.linear(h, w.fc_weight, w.fc_bias), approximate="tanh")  # GPT-2's "gelu_new"
        x = x + F.linear(h, w.mlp_proj_weight, w.mlp_proj_bias)
    cache.advance(t)
    x = x.view(b, t, c)
    if last_only:
        x = x[:, -1]  # (B, C)
        t = 1
    logits = F.linear(F.layer_norm(x, (c,), plan.ln_f_weight, plan.ln_f_bias, plan.eps), plan.head)
    return logits.view(b, t, -1)
