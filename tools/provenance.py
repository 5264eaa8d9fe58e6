"""Where an exported model came from: the git commit or DVC experiment that recorded it, and
the exact params of that run.

A model is identified by content, the way DVC itself does: the md5 DVC computes for the
train stage's output folder (`data/model`, an `md5: <hash>.dir` line in dvc.lock). The
export hashes the folder in the workspace, then looks for a dvc.lock holding that hash: the
commit checked out (HEAD) first, then every experiment of the repository
(`refs/exps/<baseline>/<name>`, what `dvc exp run` keeps). The run found is the model's
origin and its committed params.yaml is the model's exact params, even when the workspace
params have moved on since. A model no commit or experiment recorded (trained by hand, or
dvc.lock out of date) is said to be such, never attributed to a run that did not make it.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

# what `dvc exp run` stores: refs/exps/<first 2 hex of the baseline>/<other 38>/<name>
EXP_REF = re.compile(r"^refs/exps/([0-9a-f]{2})/([0-9a-f]{38})/([^/]+)$")


class GitError(RuntimeError):
    """git is absent, or the folder is not a checkout."""


def git(repo: Path, *args: str) -> str:
    """stdout of a read-only git command; --no-optional-locks: reading must not write the
    index while someone else commits."""
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), "--no-optional-locks", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise GitError(f"git {' '.join(args)}: {exc}") from exc
    return done.stdout


def git_revision(repo: Path) -> dict:
    """{"commit", "dirty"} of the repository at `repo`; "unknown"/None when git or the repo is
    absent (a source tarball)."""
    try:
        commit = git(repo, "rev-parse", "HEAD").strip()
        dirty = bool(git(repo, "status", "--porcelain").strip())
    except GitError:
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit, "dirty": dirty}


def file_md5(path: Path) -> str:
    digest = hashlib.md5()  # DVC's content hash, not a security measure
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dvc_md5(path: Path) -> str:
    """The md5 DVC records for `path` in dvc.lock: a file's md5, or for a folder the md5 of
    the sorted JSON list of its files' {md5, relpath} followed by ".dir" (dvc-data's Tree)."""
    if path.is_file():
        return file_md5(path)
    entries = [
        {"md5": file_md5(file), "relpath": file.relative_to(path).as_posix()}
        for file in sorted(path.rglob("*"))
        if file.is_file()
    ]
    entries.sort(key=lambda entry: entry["relpath"])
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"


def lock_outputs(lock_text: str) -> dict[str, tuple[str, str]]:
    """{output path: (stage, md5)} of a dvc.lock."""
    stages = (yaml.safe_load(lock_text) or {}).get("stages", {}) or {}
    return {
        item["path"]: (stage, item.get("md5"))
        for stage, entry in sorted(stages.items())
        for item in entry.get("outs", []) or []
        if "path" in item
    }


def output_of(model: Path, repo: Path, lock_text: str) -> tuple[str, str] | None:
    """(stage, output path) of the dvc.lock output holding `model`, or None."""
    try:
        rel = model.resolve().relative_to(repo.resolve()).as_posix()
    except ValueError:  # the model lives outside the repository: no lock entry can name it
        return None
    for path, (stage, _) in lock_outputs(lock_text).items():
        if rel == path or rel.startswith(path.rstrip("/") + "/"):
            return stage, path
    return None


def dvc_lock_hashes(lock: Path, model: Path, repo: Path) -> dict:
    """The hash dvc.lock records for the output that holds `model` (train's data/model) and for
    the same path as the evaluate stage's dependency: equal when eval.json graded this model."""
    if not lock.is_file():
        return {}
    text = lock.read_text(encoding="utf-8")
    found_output = output_of(model, repo, text)
    if found_output is None:
        return {}
    stage, path = found_output
    found = {"model_stage": stage, "model_path": path, "model_md5": lock_outputs(text)[path][1]}
    stages = (yaml.safe_load(text) or {}).get("stages", {})
    for name, entry in sorted(stages.items()):
        for item in entry.get("deps", []) or []:
            if item.get("path") == path:
                found[f"{name}_dep_md5"] = item.get("md5")
    return found


@dataclass(frozen=True)
class Origin:
    """The run that recorded a model: an experiment, a commit, or none."""

    kind: str  # "experiment" | "commit" | "none"
    name: str | None  # the experiment's name, or the branch of a commit
    ref: str | None  # refs/exps/... of an experiment, or the commit id
    commit: str | None  # the commit whose dvc.lock records the model
    baseline: str | None  # the commit an experiment was run on

    def to_dict(self) -> dict:
        return asdict(self)


NO_ORIGIN = Origin("none", None, None, None, None)


def experiment_refs(repo: Path) -> list[tuple[str, str, str, str]]:
    """(ref, commit, name, baseline) of every experiment of the repository."""
    listing = git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/exps/")
    refs = []
    for line in listing.splitlines():
        ref, _, commit = line.partition(" ")
        match = EXP_REF.match(ref)
        if match:  # not refs/exps/exec/... nor the queue's refs
            refs.append((ref, commit, match.group(3), match.group(1) + match.group(2)))
    return refs


def recorded_md5(repo: Path, commit: str, path: str) -> str | None:
    try:
        text = git(repo, "show", f"{commit}:dvc.lock")
    except GitError:  # a commit without dvc.lock
        return None
    return lock_outputs(text).get(path, (None, None))[1]


def find_origin(repo: Path, path: str, md5: str, experiment: str | None = None) -> Origin:
    """The commit (HEAD) or experiment whose dvc.lock records output `path` with hash `md5`.
    With `experiment`, only that experiment is looked at."""
    try:
        head = git(repo, "rev-parse", "HEAD").strip()
        if experiment is None and recorded_md5(repo, head, path) == md5:
            branch = git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip()
            return Origin("commit", None if branch == "HEAD" else branch, head, head, None)
        for ref, commit, name, baseline in experiment_refs(repo):
            if experiment in (None, name) and recorded_md5(repo, commit, path) == md5:
                return Origin("experiment", name, ref, commit, baseline)
    except GitError:
        return NO_ORIGIN
    return NO_ORIGIN


def committed_params(repo: Path, commit: str) -> str:
    """params.yaml as the commit (or experiment commit) holds it."""
    return git(repo, "show", f"{commit}:params.yaml")


def artifact_for(repo: Path, path: str) -> str | None:
    """The name dvc.yaml's `artifacts:` gives output `path` (what `dvc artifacts get` and GTO
    take), or None."""
    dvc_yaml = repo / "dvc.yaml"
    if not dvc_yaml.is_file():
        return None
    artifacts = (yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}).get("artifacts") or {}
    return next((name for name, spec in sorted(artifacts.items()) if (spec or {}).get("path") == path), None)


def rebuild_commands(origin: Origin, archive: str, model_path: str | None) -> list[str]:
    """Shell lines that rebuild (or fetch) the model, for the model card."""
    fetch = []
    if model_path:  # any git revision, experiment commits too; the data comes from the cache or remote
        fetch = [f"dvc get . {model_path} --rev {origin.commit} -o {model_path}-{origin.name or 'run'}  # or fetch it"]
    if origin.kind == "experiment":
        return [
            f"git checkout {origin.baseline}",
            f"dvc exp apply {origin.name}  # while the experiment is in the repository (dvc exp list)",
            "dvc repro  # rebuilds only what the cache lacks",
            *fetch,
            f"# or from this archive's exact params: git checkout {origin.baseline}",
            f"#   cp {archive}/params.yaml params.yaml && dvc repro",
        ]
    if origin.kind == "commit":
        return [f"git checkout {origin.commit}", "dvc repro", *fetch]
    return [
        "# no commit or experiment recorded this model (trained outside dvc, or dvc.lock out of date):",
        f"# the nearest rebuild is the commit it was exported at, with {archive}/params.yaml",
        f"cp {archive}/params.yaml params.yaml && dvc repro",
    ]
