"""The named recipes of data/recipes.yaml: load, resolve to params overrides, check, and turn into `dvc exp run`.

A recipe is a complete set of overrides over params.yaml at a scale (`mini`: the CPU miniature
that runs here; `real`: the seed's scale). Everything is checked before any stage runs: an
unknown recipe or scale, a key params.yaml does not have, a value of the wrong type (each
section is loaded into the dataclass its stage reads), a model variant whose fixed vocabulary
is not the tokenizer's, a packed context longer than the variant's, and a two-phase run
without raw text to pre-train on.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from common.params import ParamsError, section_from_mapping
from corpus.articles import DownloadParams
from corpus.clean import CleanParams
from corpus.windows import WindowParams
from dataset.encode import EncodeParams
from dataset.pack import PackParams
from dataset.shuffle import ShuffleParams
from dataset.tokenizer_training import TokenizerParams
from evaluation.evaluate import EvaluateParams
from model.variants import load_variant
from quality.dedup import DedupParams
from quality.filter import FilterParams
from synth.contrast_swap import ContrastSwapParams
from synth.generate_params import GenerateParams
from synth.qpt import QptParams
from training.params import TrainParams

RECIPES_PATH = Path(__file__).resolve().parent.parent / "data" / "recipes.yaml"
SCALES = ("mini", "real")
# The sections a recipe may change, each with the dataclass its stage loads.
SECTIONS = {
    "download": DownloadParams,
    "clean": CleanParams,
    "window": WindowParams,
    "generate": GenerateParams,
    "filter": FilterParams,
    "dedup": DedupParams,
    "contrast_swap": ContrastSwapParams,
    "qpt": QptParams,
    "shuffle": ShuffleParams,
    "tokenizer": TokenizerParams,
    "encode": EncodeParams,
    "pack": PackParams,
    "train": TrainParams,
    "evaluate": EvaluateParams,
}
_RECIPE_FIELDS = {"description", "finding", "changes", *SCALES}


class RecipeError(ValueError):
    """A recipe that cannot run: names the recipe, the scale and the key."""


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    finding: str
    changes: dict[str, Any]
    per_scale: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Registry:
    scales: dict[str, dict[str, Any]]
    recipes: dict[str, Recipe]

    def get(self, name: str) -> Recipe:
        if name not in self.recipes:
            raise RecipeError(f"unknown recipe {name!r}; known: {', '.join(self.recipes)}")
        return self.recipes[name]

    def overrides(self, name: str, scale: str) -> dict[str, Any]:
        """scales.<scale>, then the recipe's changes, then its own keys for that scale (later wins)."""
        if scale not in SCALES:
            raise RecipeError(f"unknown scale {scale!r}; known: {', '.join(SCALES)}")
        recipe = self.get(name)
        return {**self.scales[scale], **recipe.changes, **recipe.per_scale[scale]}


def _mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecipeError(f"{where}: expected a mapping of dotted params keys to values")
    return value


def load_registry(path: Path = RECIPES_PATH) -> Registry:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RecipeError(f"{path}: cannot read the recipes: {exc}") from exc
    if not isinstance(data, dict) or set(data) != {"scales", "recipes"}:
        raise RecipeError(f"{path}: expected exactly the top-level keys 'scales' and 'recipes'")
    scales = _mapping(data["scales"], f"{path}:scales")
    if set(scales) != set(SCALES):
        raise RecipeError(f"{path}:scales: expected the scales {', '.join(SCALES)}")
    recipes = {}
    for name, entry in _mapping(data["recipes"], f"{path}:recipes").items():
        where = f"{path}:recipes.{name}"
        entry = _mapping(entry, where)
        unknown = sorted(set(entry) - _RECIPE_FIELDS)
        missing = sorted({"description", "finding", "changes"} - set(entry))
        if unknown or missing:
            raise RecipeError(f"{where}: unknown fields {unknown} / missing fields {missing}")
        recipes[name] = Recipe(
            name=name,
            description=str(entry["description"]),
            finding=str(entry["finding"]),
            changes=_mapping(entry["changes"], f"{where}.changes"),
            per_scale={scale: _mapping(entry.get(scale), f"{where}.{scale}") for scale in SCALES},
        )
    return Registry({s: _mapping(scales[s], f"{path}:scales.{s}") for s in SCALES}, recipes)


def apply_overrides(params: dict, overrides: dict[str, Any], where: str) -> dict:
    """A copy of `params` with every dotted key set; a key params.yaml lacks is an error."""
    out = copy.deepcopy(params)
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = out
        for depth, part in enumerate(parents):
            if not isinstance(node, dict) or part not in node:
                raise RecipeError(f"{where}: {key}: params.yaml has no {'.'.join(parents[: depth + 1])}")
            node = node[part]
        if not isinstance(node, dict) or leaf not in node:
            raise RecipeError(f"{where}: {key}: params.yaml has no such key")
        if isinstance(node[leaf], dict) != isinstance(value, dict):
            raise RecipeError(f"{where}: {key}: a mapping replaces a mapping, a value a value")
        if isinstance(value, dict) and set(value) != set(node[leaf]):
            raise RecipeError(f"{where}: {key}: give every key of the mapping ({', '.join(node[leaf])})")
        node[leaf] = copy.deepcopy(value)
    return out


def check_params(params: dict, where: str) -> None:
    """Every section as its stage would load it, plus the checks no single stage can make."""
    try:
        loaded = {name: section_from_mapping(params[name], cls, f"{where}:{name}") for name, cls in SECTIONS.items()}
    except ParamsError as exc:
        raise RecipeError(str(exc)) from exc
    train, pack = loaded["train"], loaded["pack"]
    try:
        config = load_variant(train.variant, vocab_size=loaded["tokenizer"].vocab_size)
    except (KeyError, ValueError) as exc:
        raise RecipeError(f"{where}: train.variant / tokenizer.vocab_size: {exc.args[0]}") from exc
    if pack.context_length > config.context_length:
        raise RecipeError(
            f"{where}: pack.context_length={pack.context_length} is above the {train.variant} variant's "
            f"context_length={config.context_length}"
        )
    if train.pretrain_epochs > 0 and not (pack.separate_raw and loaded["encode"].mix.get("raw", 0) > 0):
        raise RecipeError(
            f"{where}: train.pretrain_epochs={train.pretrain_epochs} needs raw contexts: "
            "encode.mix.raw > 0 and pack.separate_raw: true"
        )


def resolve(registry: Registry, name: str, scale: str, params: dict, extra: dict[str, Any] | None = None) -> dict:
    """The recipe's overrides (plus `extra`, e.g. the user's server URL), checked against `params`."""
    overrides = {**registry.overrides(name, scale), **(extra or {})}
    check_params(apply_overrides(params, overrides, f"{name} ({scale})"), f"{name} ({scale})")
    return overrides


def experiment_name(name: str, scale: str) -> str:
    return name if scale == "real" else f"{name}-{scale}"


def _hydra_value(value: Any) -> str:
    """A value in the override grammar `dvc exp run -S` parses (strings always quoted)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(_hydra_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def set_arguments(overrides: dict[str, Any]) -> list[str]:
    """`key=value` strings for `dvc exp run -S`; a mapping becomes one per leaf (all its keys are given)."""
    out = []
    for key, value in overrides.items():
        if isinstance(value, dict):
            out.extend(set_arguments({f"{key}.{k}": v for k, v in value.items()}))
        else:
            out.append(f"{key}={_hydra_value(value)}")
    return out
