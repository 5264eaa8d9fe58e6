"""Shared test helpers: a params file with overrides, the repo root."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tools.deps import PACKAGES  # noqa: F401  (the project's own packages, for tests that copy or walk them)

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


@pytest.fixture
def one_torch_thread():
    """For tests of tiny models: one thread is as fast as two, and immune to a busy machine,
    where two threads wait on each other at every small op (a 0.4 s test took 20 s under load).
    Modules opt in with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
