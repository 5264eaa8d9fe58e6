"""The DVC pipeline itself: repro runs, a second repro has nothing to do, a param change
reruns only the stages that read it. Runs on a copy of the repo in tmp_path."""

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import PACKAGES, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("git") is None, reason="needs git for dvc")]


def dvc(repo, *args):
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
    }
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    for name in (*PACKAGES, "data/sample"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "params.yaml", ".dvcignore", ".dvc/config", "data/articles.txt"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, repo / name)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    return repo


def test_repro_then_nothing_to_do_then_only_window_reruns(repo):
    out = dvc(repo, "repro", "window")
    assert "Running stage 'download'" in out and "Running stage 'window'" in out
    assert (repo / "data/windows.jsonl").stat().st_size > 0

    out = dvc(repo, "repro", "window")
    assert "Running stage" not in out

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["window"]["stride"] = 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = dvc(repo, "repro", "window")
    assert "Running stage 'window'" in out
    assert "Running stage 'download'" not in out and "Running stage 'clean'" not in out
