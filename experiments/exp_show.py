"""DVC experiments as rows: `dvc exp show --json` read into one `Experiment` per row.

Shared by the readers of experiments (tools/compare.py, experiments/ablation.py), so both see
the same rows, names and states, and print them as the same Markdown tables.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Experiment:
    name: str  # experiment name, branch or short commit, "workspace"
    rev: str
    parent: str | None  # the baseline commit's name for an experiment, None for a baseline row
    state: str | None  # "failed", "queued", "running" or None when it finished
    params: dict[str, object]  # flattened dotted keys of params.yaml
    metrics: dict[str, dict]  # metrics file -> its content


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _experiment(entry: dict, parent: str | None, executor: dict | None) -> Experiment:
    data = entry.get("data") or {}
    params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
    metrics = {path: (content or {}).get("data") or {} for path, content in (data.get("metrics") or {}).items()}
    state = (executor or {}).get("state") or ("failed" if entry.get("error") else None)
    if state == "success":
        state = None
    rev = entry["rev"]
    name = entry.get("name") or (rev[:7] if len(rev) == 40 else rev)  # a commit, or "workspace"
    return Experiment(name, rev, parent, state, flatten(params), metrics)


def parse_exp_show(rows: list[dict]) -> list[Experiment]:
    """`dvc exp show --json` (a list of baseline rows, each with its experiments) in display order."""
    if not isinstance(rows, list):
        raise ValueError("expected the JSON list that `dvc exp show --json` prints")
    experiments = []
    for row in rows:
        baseline = _experiment(row, None, None)
        experiments.append(baseline)
        for group in row.get("experiments") or []:
            for entry in group.get("revs") or []:  # one rev per experiment since DVC 3
                experiments.append(_experiment(entry, baseline.name, group.get("executor")))
    return experiments


def dig(tree: dict, dotted: str) -> object:
    for key in dotted.split("."):
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return tree


def exp_show_json(all_commits: bool, cwd: Path) -> list[dict]:
    # the dvc of this interpreter: the pinned one, whatever PATH says
    cmd = [sys.executable, "-m", "dvc", "exp", "show", "--json", *(["--all-commits"] if all_commits else [])]
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"`dvc {' '.join(cmd[3:])}` failed in {cwd}: {done.stderr.strip() or done.stdout.strip()}")
    return json.loads(done.stdout)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table; a `|` inside a cell is escaped so it cannot split the cell."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.strip().replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *(line(r) for r in rows)])
