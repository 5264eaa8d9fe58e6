"""Where resumable stores live: one place that every experiment workspace of a repository shares.

The stores (generate's work store, the training checkpoints, the download cache) are not DVC
outputs: they are caches of expensive work keyed by content, and a stage reads what it needs
from them. `dvc exp run --temp` and `dvc exp run --queue` + `dvc queue start` run each
experiment in a fresh copy of the workspace under `<repo>/.dvc/tmp/exps/`; a store kept inside
that copy would start empty and redo every item. So a relative store path is resolved against
the repository's own workspace (the folder holding `.dvc/tmp/exps/`), whichever copy runs.

WW2LM_STORES=/some/folder moves every store root there (a fast disk, a folder shared by
several clones); generate.store_url still sends the generate store to an fsspec URL.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

STORES_ENV = "WW2LM_STORES"
# DVC's experiment copies live in <repo>/.dvc/tmp/exps/... (dvc.repo.experiments.utils.EXEC_TMP_DIR).
_EXPERIMENT_COPIES = (".dvc", "tmp", "exps")


class StoreBusyError(RuntimeError):
    """Another process holds the store folder's lock."""


def shared_root(workspace: Path | None = None) -> Path:
    """The folder relative store paths are resolved against (see the module docstring)."""
    configured = os.environ.get(STORES_ENV, "").strip()
    if configured:
        return Path(configured).expanduser().resolve()
    workspace = (workspace or Path.cwd()).resolve()
    parts = workspace.parts
    n = len(_EXPERIMENT_COPIES)
    for i in range(len(parts) - n, 0, -1):
        if parts[i : i + n] == _EXPERIMENT_COPIES:
            return Path(*parts[:i])
    return workspace


def shared_path(path: Path, workspace: Path | None = None) -> Path:
    """An absolute path stays; a relative one lands under `shared_root`."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else shared_root(workspace) / path


@contextlib.contextmanager
def exclusive(folder: Path, what: str) -> Iterator[None]:
    """Hold `folder/.lock` while writing into it: two experiments of one identity never interleave."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise StoreBusyError(
                f"{folder}: another process (pid {holder}) is writing {what} here; "
                "wait for it or run this experiment after it"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
