"""One convention for everything a stage drops or rejects, in the spirit of datatrove's filters.

A check looks at one item and returns None to keep it, or a reason: a short snake_case name
(`too_short`, `duplicate`, `language:german`). A `Drops` tally counts the reasons and logs each
drop with where it happened; every stage writes `drops.as_metrics()` under the key `"dropped"`
of its metrics file, so `dvc metrics diff` shows every reason of every stage the same way.

    drops = Drops("clean")
    for line in lines:
        reason = article_problem(line.record)      # a check: None or a reason
        if reason:
            drops.add(reason, f"line={line.lineno}")
            continue
        ...
    write_json(metrics, {..., "dropped": drops.as_metrics()})
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
Check = Callable[[T], str | None]  # None keeps the item; a string is the reason it is dropped


class Drops(Counter):
    """Reason -> count, logging each drop on the stage's logger."""

    def __init__(self, stage: str, level: int = logging.WARNING) -> None:
        super().__init__()
        self.log = logging.getLogger(stage)
        self.level = level

    def add(self, reason: str, where: str = "", count: int = 1) -> None:
        self[reason] += count
        if where:
            self.log.log(self.level, "%s dropped reason=%s", where, reason)

    def as_metrics(self) -> dict[str, int]:
        """Sorted by reason, so the metrics file is byte-stable."""
        return dict(sorted(self.items()))


def first_reason(item: T, checks: Iterable[Check]) -> str | None:
    """The reason of the first check that drops `item`, or None when every check keeps it."""
    for check in checks:
        reason = check(item)
        if reason:
            return reason
    return None
