"""Shared stores: every experiment copy of a workspace resolves them to the repository's workspace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from common.stores import STORES_ENV, StoreBusyError, exclusive, shared_path, shared_root

PROJECT = Path(__file__).resolve().parents[1]


def test_plain_workspace_is_its_own_root(tmp_path, monkeypatch):
    monkeypatch.delenv(STORES_ENV, raising=False)
    assert shared_root(tmp_path) == tmp_path.resolve()
    assert shared_path(Path("data/work/generate"), tmp_path) == tmp_path.resolve() / "data/work/generate"


def test_experiment_copy_resolves_to_the_repository(tmp_path, monkeypatch):
    monkeypatch.delenv(STORES_ENV, raising=False)
    copy = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "standalone" / "tmpab12"
    copy.mkdir(parents=True)
    assert shared_root(copy) == (tmp_path / "repo").resolve()
    assert shared_path(Path("data/checkpoints"), copy) == (tmp_path / "repo").resolve() / "data/checkpoints"


def test_environment_and_absolute_paths_win(tmp_path, monkeypatch):
    monkeypatch.setenv(STORES_ENV, str(tmp_path / "fast"))
    copy = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpx"
    assert shared_path(Path("data/work/generate"), copy) == (tmp_path / "fast").resolve() / "data/work/generate"
    assert shared_path(tmp_path / "elsewhere", copy) == tmp_path / "elsewhere"


def test_second_writer_is_refused_with_the_holder(tmp_path):
    folder = tmp_path / "run"
    busy = pytest.raises(StoreBusyError, match=rf"{folder}.*pid {os.getpid()}")
    with exclusive(folder, "checkpoints"), busy, exclusive(folder, "checkpoints"):
        pass
    with exclusive(folder, "checkpoints"):  # released: the next run may write
        pass


# A stage that counts the items its store lacked, the way generate does.
STAGE = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    import yaml
    from common.stores import shared_path
    store = shared_path(Path("data/work/store"))
    store.mkdir(parents=True, exist_ok=True)
    new = 0
    for item in range(5):
        path = store / f"{item}.json"
        if not path.exists():
            path.write_text("made")
            new += 1
    with open(store / "runs.log", "a") as log:
        log.write(os.getcwd() + "\\n")
    lr = yaml.safe_load(open("params.yaml"))["train"]["lr"]
    Path("metrics.json").write_text(json.dumps({"new_items": new, "lr": lr}))
    """
)


@pytest.mark.slow
def test_temp_experiment_changing_train_params_makes_no_new_items(tmp_path):
    """A real `dvc exp run --temp`: the copy under .dvc/tmp/exps finds the workspace's store."""
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(PROJECT), "GIT_AUTHOR_NAME": "t"}
    env.update(GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    env.pop(STORES_ENV, None)
    dvc = [sys.executable, "-m", "dvc"]

    def run(*cmd):
        subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True, text=True)

    (repo / "stage.py").write_text(STAGE)
    (repo / "params.yaml").write_text("train:\n  lr: 0.004\n")
    (repo / "dvc.yaml").write_text(
        f"stages:\n  gen:\n    cmd: {sys.executable} stage.py\n    deps: [stage.py]\n"
        "    params: [train]\n    metrics:\n      - metrics.json:\n          cache: false\n"
    )
    (repo / ".gitignore").write_text("/data/work/\n")
    run("git", "init", "-q")
    run(*dvc, "init", "-q")
    run(*dvc, "config", "core.analytics", "false")
    run(*dvc, "repro", "-q")
    assert json.loads((repo / "metrics.json").read_text())["new_items"] == 5
    run("git", "add", "-A")
    run("git", "commit", "-qm", "base")

    run(*dvc, "exp", "run", "--temp", "-n", "lr-half", "-S", "train.lr=0.002")

    runs = (repo / "data/work/store/runs.log").read_text().split()
    assert len(runs) == 2 and f"{os.sep}.dvc{os.sep}tmp{os.sep}exps{os.sep}" in runs[1]
    shown = subprocess.run(
        [*dvc, "exp", "show", "--json"], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout
    metrics = [
        exp["data"]["metrics"]["metrics.json"]["data"]
        for rev in json.loads(shown)
        for exp in (rev.get("experiments") or [])
        for exp in exp.get("revs", [])
        if exp.get("name") == "lr-half"
    ]
    assert metrics == [{"new_items": 0, "lr": 0.002}]
