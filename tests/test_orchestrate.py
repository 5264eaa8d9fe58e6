"""The orchestrator alternates train and evaluate processes and resumes after a kill."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT
from tests.train_helpers import build_training_data, train_args
from tools import orchestrate
from training.checkpoint import list_checkpoints


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("orchestrate")
    paths = build_training_data(
        root,
        **{
            "orchestrate.slice_steps": 4,
            "evaluate.max_questions": 6,
            "evaluate.max_new_tokens": 8,
            "evaluate.open_max_new_tokens": 8,
        },
    )
    windows = root / "windows.jsonl"
    windows.write_text("")
    return paths | {"windows": windows, "root": root}


def args(data, run):
    """The train stage's arguments plus what the evaluate stage needs."""
    evaluate_inputs = ["--tokens", data["tokens"], "--records", data["records"], "--windows", data["windows"]]
    return train_args(data, run, *map(str, evaluate_inputs))


@pytest.mark.slow
def test_slices_are_trained_and_judged_in_turn(data, tmp_path):
    assert orchestrate.main(args(data, tmp_path)) == 0
    [run_dir] = (tmp_path / "checkpoints").iterdir()
    judged = json.loads((run_dir / "judge.json").read_text())
    assert [entry["step"] for entry in judged] == [4, 8]
    assert all(0.0 <= entry["pass_rate"] <= 1.0 for entry in judged)
    assert sorted(p.name for p in (run_dir / "eval").glob("*.json")) == ["step-00000004.json", "step-00000008.json"]
    assert json.loads((tmp_path / "train.json").read_text())["step"] == 8
    assert orchestrate.main(args(data, tmp_path)) == 0  # nothing left to do
    assert len(json.loads((run_dir / "judge.json").read_text())) == 2


@pytest.mark.slow
def test_killing_the_orchestrator_loses_nothing(data, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # its own process group, so the kill takes the train/evaluate child with it
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.orchestrate", *args(data, tmp_path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        runs = list((tmp_path / "checkpoints").glob("*")) if (tmp_path / "checkpoints").exists() else []
        if runs and list_checkpoints(runs[0]):
            break
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    [run_dir] = (tmp_path / "checkpoints").iterdir()
    assert not (run_dir / "judge.json").exists() or len(json.loads((run_dir / "judge.json").read_text())) < 2

    assert orchestrate.main(args(data, tmp_path)) == 0
    judged = json.loads((run_dir / "judge.json").read_text())
    assert [entry["step"] for entry in judged] == [4, 8]
