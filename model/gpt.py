"""GPT-2 for packed contexts, written out here (no transformers model classes).

Token + learned absolute position embeddings, pre-norm blocks (LayerNorm -> attention ->
residual, LayerNorm -> MLP with tanh-GELU -> residual), a final LayerNorm and an untied
output head, zero dropout. What differs from GPT-2 is packing: a context row holds several
records, positions restart at 0 in each and attention never crosses a record boundary
(model/attention.py); model/packing.py builds the inputs and explains how targets align.

References: the GPT-2 paper (Radford et al. 2019) and karpathy/nanoGPT `model.py`, whose
layout and parameter names this follows, so GPT-2 weights map over (model/hf_import.py).

Example:
    model = GPT(load_variant("tiny", vocab_size=8000))
    logits, loss = model(idx, targets, loss_mask, positions, cu_seqlens)
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 (PyTorch's own convention)
from torch import Tensor

from model.attention import RecordPlan, attend, choose_backend, plan_records
from model.config import GPTConfig
from model.decode import PlanCache, decode
from model.head_loss import head_cross_entropy
from model.kv_cache import KVCache
from model.packing import cu_seqlens_from_positions, positions_from_cu_seqlens

IGNORE_INDEX = -100  # F.cross_entropy's default ignore_index


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention, causal within each record of the packed context."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v for all heads
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)  # residual projection

    def forward(self, x: Tensor, plan: RecordPlan) -> Tensor:
        b, t, c = x.shape  # (B, T, C): batch, tokens per row, n_embd
        # flatten to flash-attn's varlen layout: the records of all rows in one (N, nh, hs) sequence
        q, k, v = self.c_attn(x).view(b * t, 3, self.n_head, c // self.n_head).unbind(1)  # (N, nh, hs) each
        y = attend(q, k, v, plan)  # (N, nh, hs)
        return self.c_proj(y.reshape(b, t, c))


class MLP(nn.Module):
    """Position-wise feed-forward, 4x wide, tanh-approximated GELU as GPT-2 ("gelu_new")."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)  # residual projection

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))  # (B, T, C) -> (B, T, 4C) -> (B, T, C)


class Block(nn.Module):
    """Pre-norm transformer block (GPT-2 moved LayerNorm to the input of each sub-block)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, plan: RecordPlan) -> Tensor:
        x = x + self.attn(self.ln_1(x), plan)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """The language model. `attention_backend`: "auto" | "flash" | "records" | "dense" (model/attention.py)."""

    def __init__(
        self, config: GPTConfig, attention_backend: str = "auto", deterministic_attention: bool = False
    ) -> None:
        super().__init__()
        self.config = config
        self.attention_backend = attention_backend  # a runtime choice, so not part of the config
        self.deterministic_attention = deterministic_attention  # flash's backward bit-exact (slower)
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(config.vocab_size, config.n_embd),
                "wpe": nn.Embedding(config.context_length, config.n_embd),
                "h": nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                "ln_f": nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias),
            }
        )
        # Untied: the output head has its own weights, as in the seed's models (README.md, "Training").
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.init_weights()
        self._decode_plans = PlanCache()  # not a module or buffer: nothing in parameters() or state_dict()

    @torch.no_grad()
    def init_weights(self) -> None:
        """GPT-2 initialisation, all of it: N(0, 0.02) weights, zero biases, unit LayerNorms,
        and the residual projections scaled by 1/sqrt(2 * n_layer) (GPT-2 paper, section 2.3:
        the residual path accumulates two sub-blocks per layer)."""
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear | nn.LayerNorm) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
        for name, param in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * self.config.n_layer))

    def num_params(self, exclude_embeddings: bool = False) -> int:
        """Parameter count; the variant names count everything, untied head included.
        `exclude_embeddings` leaves out the wte/wpe lookups (which cost no FLOPs)."""
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            n -= self.transformer.wte.weight.numel() + self.transformer.wpe.weight.numel()
        return n

    def forward(
        self,
        idx: Tensor,
        targets: Tensor | None = None,
        loss_mask: Tensor | None = None,
        positions: Tensor | None = None,
        cu_seqlens: Tensor | None = None,
        return_logits: bool = True,
    ) -> tuple[Tensor | None, Tensor | None]:
        """Logits (B, T, vocab) and, given targets, the mean loss over the masked-in targets.

        idx: (B, T) token ids. targets: (B, T), targets[t] = the token after idx[t] in its
        record. loss_mask: (B, T), 1 where targets count (default: all, except targets equal
        to -100); a record's last position must be 0, which model.packing.record_targets does.
        positions: (B, T) restarting at 0 per record. cu_seqlens: (R+1,) int32 record
        boundaries over the flattened B*T tokens. Give both for packed batches; either one
        alone implies the other; neither means one record per row.
        return_logits=False (training, validation; needs targets): the head runs only on the
        positions whose target counts and no logits are returned (None): the same loss at a
        fraction of the cost where the untied head over the vocabulary dominates (small models),
        computed a chunk of positions at a time (model/head_loss.py), so neither the fp32
        (B, T, vocab) logits nor the counted positions' (M, vocab) are ever held at once.
        """
        if not return_logits and targets is None:
            raise ValueError("return_logits=False needs targets: there is nothing else to return")
        b, t = idx.shape
        if t > self.config.context_length:
            raise ValueError(f"{t} tokens per row exceed context_length={self.config.context_length}")
        device = idx.device
        if cu_seqlens is None:
            cu_seqlens = (
                torch.arange(0, b * t + 1, t, dtype=torch.int32, device=device)
                if positions is None
                else cu_seqlens_from_positions(positions)
            )
        if positions is None:
            positions = positions_from_cu_seqlens(cu_seqlens.to(device), b * t).view(b, t)
        plan = plan_records(
            cu_seqlens, b * t, self._backend(device), device, row_length=t, deterministic=self.deterministic_attention
        )

        x = self.transformer.wte(idx) + self.transformer.wpe(positions)  # (B, T, C)
        for block in self.transformer.h:
            x = block(x, plan)
        if not return_logits:
            keep = targets != IGNORE_INDEX
            if loss_mask is not None:
                keep &= loss_mask.bool()
            hidden = self.transformer.ln_f(x[keep])  # (M, C): the M counted targets
            return None, head_cross_entropy(hidden, self.lm_head.weight, targets[keep])  # never all (M, vocab) logits
        logits = self.lm_head(self.transformer.ln_f(x))  # (B, T, vocab)
        loss = None if targets is None else masked_cross_entropy(logits, targets, loss_mask)
        return logits, loss

    def new_cache(self, batch_size: int = 1, max_length: int | None = None) -> KVCache:
        """An empty KV cache for `forward_decode`, on this model's device and dtype (model/kv_cache.py)."""
        weight = self.lm_head.weight
        return KVCache(self.config, batch_size, max_length, device=weight.device, dtype=weight.dtype)

    def forward_decode(self, idx: Tensor, cache: KVCache, last_only: bool = False) -> Tensor:
        """Logits (B, T, vocab) for the tokens idx (B, T) that continue the rows in `cache`.

        Inference only, a separate path from `forward`, so training is untouched: each row is
        one sequence at positions cache.length .. cache.length+T-1; the first call (the prompt,
        "prefill") fills the cache, later calls usually pass one token. `last_only` returns
        (B, 1, vocab), skipping the head on the prompt positions that sampling does not need.
        The arithmetic is forward's, laid out for speed per token (model/decode.py).
        """
        b, t = idx.shape
        start = cache.length
        if start + t > self.config.context_length:
            raise ValueError(f"{start} cached + {t} new tokens exceed context_length={self.config.context_length}")
        # the weights are checked when a sequence starts: its cached keys and values hold them anyway
        return decode(self._decode_plans.get(self, refresh=start == 0), idx, cache, last_only)

    def _backend(self, device: torch.device) -> str:
        # q/k/v come out of a Linear, so under autocast they have the autocast dtype
        if torch.is_autocast_enabled(device.type):
            dtype = torch.get_autocast_dtype(device.type)
        else:
            dtype = self.lm_head.weight.dtype
        return choose_backend(device, dtype, self.attention_backend)

    def configure_optimizer(
        self, weight_decay: float, lr: float, betas: tuple[float, float] = (0.9, 0.95), fused: bool | None = None
    ) -> torch.optim.AdamW:
        """AdamW with two named groups, as nanoGPT: "decay" holds every >=2-D tensor (matmul
        weights and embeddings), "no_decay" the biases and LayerNorm gains. Change the decay
        later with `set_weight_decay`; `fused` defaults to the fused kernel on CUDA."""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"name": "decay", "params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"name": "no_decay", "params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        if fused is None:
            fused = all(p.is_cuda for p in params)
        return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=True if fused else None)  # None: foreach


def set_weight_decay(optimizer: torch.optim.Optimizer, weight_decay: float) -> None:
    """Set the "decay" group's weight decay, e.g. 0.1 -> 0.05 after two epochs (README.md, "Training").

    The value lives in the optimizer's param_groups, so a checkpoint of optimizer.state_dict()
    restores it on resume."""
    groups = [g for g in optimizer.param_groups if g.get("name") == "decay"]
    if not groups:
        raise ValueError("optimizer has no param group named 'decay' (build it with GPT.configure_optimizer)")
    for group in groups:
        group["weight_decay"] = weight_decay


def masked_cross_entropy(logits: Tensor, targets: Tensor, loss_mask: Tensor | None = None) -> Tensor:
    """Mean cross entropy over the targets whose loss_mask is 1: logits (B, T, V), targets/mask (B, T).

    Masked-out targets get exactly zero gradient; with nothing masked in the loss is 0, not NaN.
    """
    targets = targets.long()  # packed arrays may hold int32 ids; cross_entropy wants int64
    if loss_mask is not None:
        targets = targets.masked_fill(~loss_mask.bool(), IGNORE_INDEX)
    total = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    return total / (targets != IGNORE_INDEX).sum().clamp_min(1)
