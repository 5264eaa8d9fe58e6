"""Timing shared by the benchmarks (a leading underscore keeps `make bench` from running it):
runs take turns, so drift in machine speed hits all alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each run after one warm-up call (first-call allocations, kernel choice)."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}
