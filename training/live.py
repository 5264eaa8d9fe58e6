"""The train stage's DVCLive logger, offline unless the user opts in to DVC Studio.

DVCLive posts params, metrics and the git SHA to DVC Studio whenever it finds a Studio token
(DVC_STUDIO_TOKEN, or `studio.token` in any DVC config). A token set for another project must
not make this one phone home, so the logger is built with DVC_STUDIO_OFFLINE forced on unless
WW2LM_DVC_STUDIO=1 is set; then DVC's own Studio settings apply (README: "DVC Studio").
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

STUDIO_OPT_IN = "WW2LM_DVC_STUDIO"  # "1": let DVCLive follow DVC's Studio config and token


def studio_opted_in() -> bool:
    return os.environ.get(STUDIO_OPT_IN, "") == "1"


@contextlib.contextmanager
def _studio_offline() -> Iterator[None]:
    """DVC_STUDIO_OFFLINE=true while DVCLive reads its config (it decides once, at init)."""
    before = os.environ.get("DVC_STUDIO_OFFLINE")
    os.environ["DVC_STUDIO_OFFLINE"] = "true"
    try:
        yield
    finally:
        if before is None:
            del os.environ["DVC_STUDIO_OFFLINE"]
        else:
            os.environ["DVC_STUDIO_OFFLINE"] = before


def open_live(folder: Path):
    """A DVCLive logger writing to `folder`, never talking to Studio unless opted in."""
    from dvclive import Live  # imported by the main rank only: dvclive pulls in dvc

    with contextlib.nullcontext() if studio_opted_in() else _studio_offline():
        return Live(dir=str(folder), save_dvc_exp=False, dvcyaml=False)
