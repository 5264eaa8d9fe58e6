"""The GPT architecture as one frozen dataclass.

A config holds only what shapes the weights, so it can be saved beside a checkpoint and
compared between runs. Runtime choices (the attention backend, torch.compile, autocast)
belong to whoever runs the model. Dropout is not a field: the design trains with zero
dropout (README.md, "Training"), so there is nothing to configure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class GPTConfig:
    """GPT-2 shapes. The defaults are the `ww2-183m` variant (data/variants.yaml)."""

    vocab_size: int = 32000  # rows of wte and lm_head; the SentencePiece tokenizer's size
    context_length: int = 4096  # learned positions in wpe: the longest record a context can hold
    n_layer: int = 18  # transformer blocks
    n_head: int = 12  # attention heads per block; n_embd / n_head is the head size (64 here)
    n_embd: int = 768  # residual stream width
    bias: bool = True  # biases in Linear and LayerNorm, as in GPT-2 (needed to import its weights)
    layer_norm_eps: float = 1e-5  # GPT-2's layer_norm_epsilon

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig.n_embd={self.n_embd} is not divisible by n_head={self.n_head}")

    @property
    def head_size(self) -> int:
        """Channels per attention head."""
        return self.n_embd // self.n_head

    def num_params(self) -> int:
        """Parameter count of the GPT this config builds, without building it (untied head)."""
        d, biased = self.n_embd, int(self.bias)
        norm = d * (1 + biased)  # LayerNorm weight (+ bias)
        attn = d * 3 * d + 3 * d * biased + d * d + d * biased  # c_attn + c_proj
        mlp = d * 4 * d + 4 * d * biased + 4 * d * d + d * biased  # c_fc + c_proj
        block = 2 * norm + attn + mlp
        embeddings = self.vocab_size * d + self.context_length * d  # wte + wpe
        return embeddings + self.n_layer * block + norm + self.vocab_size * d  # + ln_f + lm_head

    def to_dict(self) -> dict:
        """Plain dict for checkpoints and metrics; `GPTConfig(**d)` rebuilds it."""
        return asdict(self)
