"""Copy a transformers GPT2LMHeadModel's weights into our GPT.

Used to prove our GPT computes GPT-2 (tests/test_model_hf.py) and to start from GPT-2
weights if one wants to. Two things differ in storage, as nanoGPT's `from_pretrained` notes:
GPT-2's projections are `Conv1D` modules whose weight is (in, out), the transpose of
nn.Linear's (out, in); and GPT-2 ties lm_head to wte while our head is untied, so the head
gets its own copy of the embedding matrix.

`to_hf_gpt2` goes the other way, into an untied GPT2LMHeadModel (bench/decode.py times
transformers' `generate` on our weights with it).
"""

from __future__ import annotations

import torch

from model.config import GPTConfig
from model.gpt import GPT

CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
GELU_TANH = ("gelu_new", "gelu_pytorch_tanh")  # both are tanh-approximated GELU, which our MLP uses


def config_from_hf_gpt2(hf_config) -> GPTConfig:
    """Our GPTConfig for a transformers GPT2Config; refuses GPT-2 options our GPT does not have."""
    unsupported = {
        "activation_function": hf_config.activation_function not in GELU_TANH,
        "n_inner": hf_config.n_inner not in (None, 4 * hf_config.n_embd),
        "scale_attn_weights": not hf_config.scale_attn_weights,
        "scale_attn_by_inverse_layer_idx": hf_config.scale_attn_by_inverse_layer_idx,
        "reorder_and_upcast_attn": hf_config.reorder_and_upcast_attn,
    }
    if bad := [name for name, is_bad in unsupported.items() if is_bad]:
        raise ValueError(f"GPT2Config settings our GPT does not implement: {', '.join(bad)}")
    return GPTConfig(
        vocab_size=hf_config.vocab_size,
        context_length=hf_config.n_positions,
        n_layer=hf_config.n_layer,
        n_head=hf_config.n_head,
        n_embd=hf_config.n_embd,
        bias=True,
        layer_norm_eps=hf_config.layer_norm_epsilon,
    )


@torch.no_grad()
def from_hf_gpt2(hf_model, attention_backend: str = "auto") -> GPT:
    """A GPT computing the same function as `hf_model` (a transformers GPT2LMHeadModel)."""
    model = GPT(config_from_hf_gpt2(hf_model.config), attention_backend=attention_backend)
    ours = model.state_dict()
    theirs = state_dict_from_hf_gpt2(hf_model.state_dict())
    if missing := sorted(set(ours) ^ set(theirs)):
        raise ValueError(f"state dicts do not line up; keys in only one of them: {missing[:8]}")
    for name, value in theirs.items():
        if value.shape != ours[name].shape:
            raise ValueError(f"{name}: shape {tuple(value.shape)} does not fit {tuple(ours[name].shape)}")
        ours[name].copy_(value)
    return model


def state_dict_from_hf_gpt2(theirs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A GPT2LMHeadModel state dict (or its safetensors file) renamed to ours: the names already
    match (nanoGPT layout); Conv1D weights are transposed and a tied (absent) head is copied."""
    # buffers such as the old causal-mask "attn.bias"/"attn.masked_bias" are not weights
    theirs = {k: v for k, v in theirs.items() if not k.endswith((".attn.bias", ".attn.masked_bias"))}
    theirs.setdefault("lm_head.weight", theirs["transformer.wte.weight"])  # tied: absent when deduplicated
    return {name: value.t() if name.endswith(CONV1D_WEIGHTS) else value for name, value in theirs.items()}


@torch.no_grad()
def to_hf_gpt2(model: GPT):
    """A transformers GPT2LMHeadModel (untied head, zero dropout, eval mode) computing what `model` does."""
    from transformers import GPT2Config, GPT2LMHeadModel  # slow import, needed only here

    config = model.config
    if not config.bias:
        raise ValueError("GPT-2 has biases everywhere; a GPT built with bias=False cannot map onto it")
    hf_config = GPT2Config(
        vocab_size=config.vocab_size,
        n_positions=config.context_length,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        activation_function="gelu_new",
        layer_norm_epsilon=config.layer_norm_eps,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=None,
    )
    hf_model = GPT2LMHeadModel(hf_config).eval()
    theirs, ours = hf_model.state_dict(), model.state_dict()
    if missing := sorted(set(ours) ^ set(theirs)):
        raise ValueError(f"state dicts do not line up; keys in only one of them: {missing[:8]}")
    for name, value in ours.items():
        theirs[name].copy_(value.t() if name.endswith(CONV1D_WEIGHTS) else value)
    return hf_model.to(model.lm_head.weight.device)
