import os
import random

import numpy as np
import pytest
import torch

from common.files import remove_stale_temps
from training.checkpoint import (
    CheckpointError,
    capture_rng,
    load_checkpoint,
    restore_rng,
    resume_state,
    save_checkpoint,
)


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


def tiny_state(step):
    return {"model": {"w": torch.full((2,), float(step))}, "optimizer": {}, "step": step, "epoch": 0,
            "epoch_position": step, "rng": capture_rng(torch.device("cpu")), "history": {}, "config": {}}  # fmt: skip


def run_with_corrupt_newest(folder):
    """Checkpoints at steps 4, 8 and 12, the two newest truncated (a disk that filled up)."""
    for step in (4, 8, 12):
        save_checkpoint(folder, step, tiny_state(step), keep=5)
    for step in (8, 12):
        path = folder / f"step-{step:08d}.pt"
        path.write_bytes(path.read_bytes()[:200])


def test_a_corrupt_newest_checkpoint_names_the_newest_one_that_really_loads(tmp_path):
    run_with_corrupt_newest(tmp_path)
    with pytest.raises(CheckpointError) as caught:
        resume_state(tmp_path, None)
    message = str(caught.value)
    assert "step-00000012.pt: unreadable checkpoint" in message
    assert f"--resume-from {tmp_path / 'step-00000004.pt'}" in message  # step 8 is corrupt too: not named


def test_resuming_past_corrupt_checkpoints_sets_them_aside_so_the_next_plain_run_works(tmp_path):
    run_with_corrupt_newest(tmp_path)
    path, state = resume_state(tmp_path, tmp_path / "step-00000004.pt")
    assert state["step"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step-00000004.pt", "step-00000008.pt.corrupt", "step-00000012.pt.corrupt"]  # fmt: skip
    path, state = resume_state(tmp_path, None)  # before: failed again on the same corrupt step 12
    assert path.name == "step-00000004.pt" and state["step"] == 4


def test_stale_checkpoint_temps_of_a_killed_write_go_on_the_next_run_of_the_trainer_folder(tmp_path):
    leftover = tmp_path / ".step-00000008.pt.a1b2c3.tmp"  # what kill -9 during torch.save leaves
    leftover.write_bytes(b"x" * 1000)
    save_checkpoint(tmp_path, 4, tiny_state(4), keep=3)
    assert remove_stale_temps(tmp_path) == 1 and not leftover.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["step-00000004.pt"]
