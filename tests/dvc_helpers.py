"""A throwaway git + DVC repository for tests of the tools that read experiments."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def committed_dvc_repo(repo: Path, files: dict[str, str]) -> Callable[..., None]:
    """Write `files` (dvc.yaml among them) into `repo`, `git init` it on branch main, `dvc init`,
    `dvc repro` and commit the result as the baseline; returns a runner of commands in `repo`
    (`run("dvc", "exp", "run", ...)` runs this interpreter's dvc). Callers set DVC_NO_ANALYTICS."""
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)

    def run(*cmd: str) -> None:
        argv = [sys.executable, "-m", "dvc", *cmd[1:]] if cmd[0] == "dvc" else list(cmd)
        subprocess.run(argv, cwd=repo, check=True, capture_output=True)

    run("git", "init", "-q", "-b", "main")
    run("git", "config", "user.email", "test@example.org")
    run("git", "config", "user.name", "test")
    run("dvc", "init", "-q")
    run("dvc", "repro", "-q")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "baseline")
    return run
