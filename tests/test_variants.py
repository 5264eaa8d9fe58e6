"""The variants registry: every entry builds, counts match the names, mistakes are named."""

from __future__ import annotations

import re

import pytest
import torch

from model.gpt import GPT
from model.variants import load_variant, load_variants


def test_ww2_183m_is_the_design_reference():
    config = load_variant("ww2-183m")
    shape = (config.n_layer, config.n_embd, config.n_head, config.context_length, config.vocab_size)
    assert shape == (18, 768, 12, 4096, 32000)
    assert config.num_params() == pytest.approx(180e6, rel=0.01)


@pytest.mark.parametrize("name", list(load_variants()))
def test_every_variant_builds_and_its_count_matches_its_name(name):
    config = load_variant(name, vocab_size=8000 if load_variants()[name]["vocab_size"] == "auto" else None)
    with torch.device("meta"):  # shapes only: no memory, no init cost
        model = GPT(config)
    assert model.num_params() == config.num_params()
    if match := re.match(r"ww2-(\d+)m", name):
        assert config.num_params() / 1e6 == pytest.approx(int(match.group(1)), rel=0.03)


def test_vocabulary_variants_exist():
    vocabularies = {entry.get("vocab_size") for entry in load_variants().values()}  # the fixed ones
    assert {8000, 16000, 32000} <= vocabularies


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="unknown model variant 'ww2-999m'.*tiny.*ww2-183m"):
        load_variant("ww2-999m")


def test_vocab_size_auto_and_mismatch():
    assert load_variant("tiny", vocab_size=1234).vocab_size == 1234
    with pytest.raises(ValueError, match="pass vocab_size"):
        load_variant("tiny")
    with pytest.raises(ValueError, match="tokenizer.vocab_size=32000"):
        load_variant("ww2-183m", vocab_size=8000)
    assert load_variant("ww2-183m", vocab_size=32000).vocab_size == 32000


def test_unknown_field_is_named(tmp_path):
    path = tmp_path / "variants.yaml"
    path.write_text("small:\n  n_layer: 2\n  n_heads: 4\n")
    with pytest.raises(ValueError, match=r"'small' has unknown fields \['n_heads'\]"):
        load_variant("small", path=path)
