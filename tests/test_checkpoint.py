import os
import random

import numpy as np
import pytest
import torch

from training.checkpoint import CheckpointError, capture_rng, load_checkpoint, restore_rng, resume_state


class RunsCode:
    """Unpickling this calls os.mkdir(marker): what a crafted checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def plant_malicious_checkpoint(folder, marker, step=9):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{step:08d}.pt"
    torch.save({"model": RunsCode(marker), "step": step}, path)
    return path


def test_a_checkpoint_that_carries_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = plant_malicious_checkpoint(tmp_path / "run", marker)
    with pytest.raises(CheckpointError, match="refused to load") as caught:
        load_checkpoint(path)
    assert str(path) in str(caught.value)
    assert not marker.exists()


def test_the_newest_checkpoint_carrying_code_is_refused_on_a_plain_resume(tmp_path):
    marker = tmp_path / "pwned"
    path = plant_malicious_checkpoint(tmp_path / "run", marker)
    with pytest.raises(CheckpointError) as caught:
        resume_state(tmp_path / "run", None)
    assert str(path) in str(caught.value) and not marker.exists()


def test_rng_states_survive_a_weights_only_round_trip(tmp_path):
    device = torch.device("cpu")
    torch.save({"rng": capture_rng(device)}, tmp_path / "rng.pt")
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"], device)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected
