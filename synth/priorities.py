"""Generation priorities from a probe of the student (`generate.priorities`).

`python -m tools.probe` writes a JSON file {"windows": {window id: weight}, "types": {prompt
type: weight}} (evaluation/probe.py): weights >= 1, higher where the student failed more.
`prioritise` reorders the planned work items by descending weight (window weight x type
weight), keeping the plan's order (its stride scheduling over `generate.weights`, its seeded
window shuffle) among equal weights: the windows and types the student gets wrong most are
generated first, and a `--limit` run spends its budget there. Order only: every item still
runs, so the records of a finished run are the same.
"""

from __future__ import annotations

import json
from pathlib import Path

from common.params import ParamsError
from synth.items import WorkItem
from synth.prompt_types import PromptType


def read_priorities(path: Path, key: str = "generate.priorities") -> dict[str, dict[str, float]]:
    """{"windows": {...}, "types": {...}} of a priorities file; ParamsError naming the file and
    the entry when it is missing, not JSON, or holds a weight that is not a positive number."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f'{key}: {path} not found (write it with python -m tools.probe, or set "")') from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ParamsError(f"{key}: {path} is not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise ParamsError(f"{key}: {path} must hold an object with 'windows' and/or 'types'")
    found = {}
    for section in ("windows", "types"):
        weights = raw.get(section, {})
        if not isinstance(weights, dict):
            raise ParamsError(f"{key}: {path}: '{section}' must map names to weights")
        for name, weight in weights.items():
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
                raise ParamsError(f"{key}: {path}: {section}.{name} = {weight!r} is not a positive number")
        found[section] = {str(name): float(weight) for name, weight in weights.items()}
    return found


def prioritise(
    items: list[WorkItem], windows: list[dict], types: list[PromptType], weights: dict[str, dict[str, float]]
) -> list[WorkItem]:
    """`items` (in plan order) by descending window weight x type weight; a stable sort, so
    equal weights keep the plan's order."""
    window_weights, type_weights = weights.get("windows", {}), weights.get("types", {})

    def weight(item: WorkItem) -> float:
        window = window_weights.get(str(windows[item.window].get("id")), 1.0)
        return window * type_weights.get(types[item.ptype].name, 1.0)

    return sorted(items, key=lambda item: -weight(item))
