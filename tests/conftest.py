"""Shared test helpers: a params file with overrides, the repo root."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def write_params(tmp_path: Path, overrides: dict | None = None) -> Path:
    """Copy the repo's params.yaml into tmp_path with dotted-key overrides applied."""
    params = copy.deepcopy(yaml.safe_load((ROOT / "params.yaml").read_text()))
    for dotted, value in (overrides or {}).items():
        *parents, key = dotted.split(".")
        node = params
        for name in parents:
            node = node[name]
        node[key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture
def params_file(tmp_path):
    def make(**overrides) -> Path:
        return write_params(tmp_path, {k.replace("__", "."): v for k, v in overrides.items()})

    return make
