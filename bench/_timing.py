"""Timing, memory and machine load shared by the benchmarks (a leading underscore keeps
`make bench` from running it): runs take turns, so drift in machine speed hits all alike, and
a figure taken while other processes compete for the cores is marked, not claimed."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

from torch.profiler import ProfilerActivity, profile


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


def peak_step_bytes(step: Callable[[], object]) -> int:
    """Peak additional tensor bytes while `step` runs, from the profiler's allocation events.

    torch.profiler with profile_memory=True records every CPU allocation and free made through
    torch's allocator; the running sum of their sizes in time order peaks at the working set.
    Exact and deterministic, unlike RSS, which the C allocator's caching blurs."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        live += event.nbytes()  # negative for a free
        peak = max(peak, live)
    return peak


def load_report() -> str:
    """The 1-minute load average and the core count, for every benchmark's first line."""
    return f"load_average={os.getloadavg()[0]:.2f} cores={os.cpu_count()}"


def busy() -> bool:
    """More runnable processes than cores: timings are shared with others and not the code's own."""
    return os.getloadavg()[0] > (os.cpu_count() or 1)


def verdict(met: bool) -> str:
    """'met' / 'MISSED', or UNRELIABLE when the machine was busy at the end of the run (no pass
    is claimed from a loaded machine, nor a miss blamed on the code)."""
    if busy():
        return f"UNRELIABLE ({load_report()}: rerun on an idle machine)"
    return "met" if met else "MISSED"
