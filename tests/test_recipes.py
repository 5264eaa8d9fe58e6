"""The 25 named recipes: loading, checking before anything runs, and the dvc command they become."""

from __future__ import annotations

import shutil

import pytest
import yaml
from dvc.utils.hydra import apply_overrides as dvc_apply_overrides

from common.params import read_params
from experiments.recipes import (
    SCALES,
    RecipeError,
    apply_overrides,
    experiment_name,
    load_registry,
    resolve,
    set_arguments,
)
from tests.conftest import ROOT
from tools import recipes as cli

PARAMS = ROOT / "params.yaml"
SEED_NAMES = [
    "WWII-33M-base",
    "wwII-base-54M",
    "ww2_71M_instruct_trained_not_good",
    "ww2_71B_instruct_trained_106k_steps_and_sucks",
    "ww2_73M_8k_vocab_collapsed",
    "ww2_73M_instruct_trained_broken",
    "ww2_185M_dirty",
    "ww2_179M_vocab_32k_loss_1.59_step_6975",
    "ww2-183m",
    "ww2-322m",
]


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def test_twenty_five_recipes_with_the_seed_names_each_described(registry):
    assert len(registry.recipes) == 25
    assert set(SEED_NAMES) <= set(registry.recipes)
    for recipe in registry.recipes.values():
        assert recipe.description and recipe.finding, recipe.name


@pytest.mark.parametrize("scale", SCALES)
def test_every_recipe_resolves_and_checks_at_both_scales(registry, scale):
    params = read_params(PARAMS)
    for name in registry.recipes:
        resolve(registry, name, scale, params)


def test_the_reference_model_is_the_seed_shape_at_real_scale(registry):
    real = registry.overrides("ww2-183m", "real")
    assert real["train.variant"] == "ww2-183m" and real["tokenizer.vocab_size"] == 32000
    assert real["pack.context_length"] == 4096
    assert registry.overrides("ww2-183m", "mini") == {}  # params.yaml is its miniature


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"train.lrr": 0.1}, r"train\.lrr: params\.yaml has no such key"),
        ({"nosection.x": 1}, r"params\.yaml has no nosection"),
        ({"train.lr": "fast"}, r"train\.lr: expected float"),
        ({"tokenizer.vocab_size": 16000}, r"ww2-183m.*32000-token vocabulary.*16000"),
        (
            {"pack.context_length": 8192},
            r"pack\.context_length=8192 is above the ww2-183m variant's context_length=4096",
        ),
        ({"encode.mix": {"qa": 1.0}}, r"give every key of the mapping"),
        ({"train.variant": "ww2-1b"}, r"unknown model variant 'ww2-1b'"),
    ],
)
def test_overrides_that_cannot_run_fail_naming_the_key(registry, extra, message):
    with pytest.raises(RecipeError, match=message):
        resolve(registry, "ww2-183m", "real", read_params(PARAMS), extra)


def test_pretraining_without_raw_text_is_refused(registry):
    with pytest.raises(RecipeError, match="pretrain_epochs=2.0 needs raw contexts"):
        resolve(registry, "raw-then-qa", "mini", read_params(PARAMS), {"pack.separate_raw": False})


def test_unknown_recipe_and_scale(registry):
    with pytest.raises(RecipeError, match="unknown recipe 'nope'; known: tiny"):
        registry.overrides("nope", "mini")
    with pytest.raises(RecipeError, match="unknown scale 'huge'"):
        registry.overrides("tiny", "huge")


def test_a_malformed_registry_names_the_entry(tmp_path):
    path = tmp_path / "recipes.yaml"
    path.write_text("scales: {mini: {}, real: {}}\nrecipes:\n  x: {description: d, changes: {}}\n")
    with pytest.raises(RecipeError, match=r"recipes\.x: unknown fields \[\] / missing fields \['finding'\]"):
        load_registry(path)


def test_set_arguments_give_dvc_exactly_the_recipe(registry, tmp_path):
    """Through DVC's own -S parser, every recipe's arguments produce what apply_overrides makes."""
    params = read_params(PARAMS)
    for name in registry.recipes:
        for scale in SCALES:
            overrides = registry.overrides(name, scale)
            copy = tmp_path / f"{name}-{scale}.yaml"
            shutil.copy(PARAMS, copy)
            dvc_apply_overrides(copy, set_arguments(overrides))
            assert yaml.safe_load(copy.read_text()) == apply_overrides(params, overrides, name), (name, scale)


def test_run_prints_the_named_experiment_and_refuses_modified_params(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "params_modified", lambda path: False)
    assert cli.main(["run", "contrastive-no-swap", "--dry-run"]) == 0
    out = capsys.readouterr().out.strip()
    assert out == "dvc exp run -n contrastive-no-swap-mini -S contrast_swap.mirror=false"
    assert experiment_name("ww2-183m", "real") == "ww2-183m"
    monkeypatch.setattr(cli, "params_modified", lambda path: True)
    assert cli.main(["run", "padded", "--dry-run"]) == 2


def test_an_impossible_run_stops_before_dvc(monkeypatch, caplog):
    called = []
    monkeypatch.setattr(cli.subprocess, "run", lambda *a, **k: called.append(a))
    code = cli.main(["run", "ww2-322m", "--scale", "real", "--set", "tokenizer.vocab_size=8000"])
    assert code == 2 and not called
    assert "32000-token vocabulary" in caplog.text


def test_list_and_check_commands(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "ww2_185M_dirty" in out and "25 recipes" in out
    assert cli.main(["check"]) == 0
    assert "25 recipes x 2 scales checked, 0 failed" in capsys.readouterr().out
