"""Shared by the inference and chat tests: a tiny random GPT with well-separated logits, saved
the way the train stage saves it, and a small tokenizer trained on a slice of the sample."""

from __future__ import annotations

from pathlib import Path

import torch

from dataset.tokenizer import Tokenizer
from model.config import GPTConfig
from model.gpt import GPT
from tests.conftest import write_params
from tests.tokenizer_helpers import sample_articles, sample_records, train_tokenizer

TOKENIZER_VOCAB = 800  # the smallest round size above the 686 special, forced and byte pieces


def tiny_gpt(vocab_size: int = 97, context_length: int = 48, seed: int = 0) -> GPT:
    """A 2-layer GPT whose weights are larger than GPT-2's init, so next-token logits are far
    apart (greedy choices cannot flip on float rounding between two code paths), with large
    token and position embeddings, so greedy decoding does not settle on one repeated token."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=vocab_size, context_length=context_length, n_layer=2, n_head=2, n_embd=32))
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.3)
        model.transformer.wte.weight.normal_(0.0, 2.0)
        model.transformer.wpe.weight.normal_(0.0, 2.0)
    return model.eval()


def save_trained_format(model: GPT, path: Path) -> Path:
    """Write `model` as training/trainer.py writes data/model/model.pt."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"config": model.config.to_dict(), "model": model.state_dict(), "step": 0, "variant": "test", "params": {}}
    torch.save(state, path)
    return path


def build_tokenizer(folder: Path) -> Tokenizer:
    """The tokenizer stage run on three sample articles (~0.1 s)."""
    params = write_params(folder, {"tokenizer.vocab_size": TOKENIZER_VOCAB})
    articles = sample_articles()[:3]
    assert train_tokenizer(folder, params, articles, sample_records(articles)) == 0
    return Tokenizer.load(folder / "tok")
