"""Executors of the generate stage: local threads, or tasks on a Dask distributed cluster.

Both run synth.items.run_item, which writes each result to the work store the
moment it is known, so stopping either executor at any point loses at most the items in
flight. Progress shows items done, rate, ETA and failures by reason.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from common.progress import ProgressBar, progress
from llm.base import ChatBackend
from synth.backends import build_backend
from synth.generate_params import GenerateParams
from synth.items import Outcome, WorkItem, attempt_item, run_item
from synth.prompt_types import PromptType
from synth.work_store import WorkStore

log = logging.getLogger("generate")


def _progress(total: int) -> ProgressBar:
    return progress(total=total, desc="generate", unit="item", smoothing=0.05)


def _report(bar: ProgressBar, counts: Counter, tag: str) -> None:
    counts[tag] += 1
    bar.update(1)
    failed = {k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("failed:")}
    bar.set_postfix(ok=counts["ok"], failed=sum(failed.values()), **dict(sorted(failed.items())[:3]))


def run_local(
    pending: list[WorkItem],
    windows: list[dict],
    types: list[PromptType],
    params: GenerateParams,
    backend: ChatBackend,
    store: WorkStore,
) -> Counter:
    """Keep `params.concurrency` items in flight on threads (a server or a batching model
    does the work; threads only wait), or fewer when the backend says so: the rules
    backend is pure CPU (`max_in_flight = 1`), one at a time."""
    in_flight = max(1, params.concurrency)
    if backend.max_in_flight:
        in_flight = min(in_flight, backend.max_in_flight)
    counts: Counter = Counter()

    def run(item: WorkItem) -> str:
        return run_item(item, windows[item.window], types[item.ptype], backend, params.mode, store)

    with _progress(len(pending)) as bar:
        if in_flight == 1:
            for item in pending:
                _report(bar, counts, run(item))
            return counts
        queue = iter(pending)
        with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="generate") as pool:
            futures = {pool.submit(run, item) for _, item in zip(range(in_flight * 2), queue, strict=False)}
            try:
                while futures:
                    finished, futures = wait(futures, return_when=FIRST_COMPLETED)
                    for future in finished:
                        _report(bar, counts, future.result())
                        nxt = next(queue, None)
                        if nxt is not None:
                            futures.add(pool.submit(run, nxt))
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    return counts


# --- Dask -------------------------------------------------------------------------------

_worker_backends: dict[str, ChatBackend] = {}
_worker_lock = threading.Lock()


def _backend_on_worker(params: GenerateParams, windows: list[dict]) -> ChatBackend:
    """One backend per worker process (a model loads once, a client keeps its pool)."""
    spec = json.dumps(
        {"backend": params.backend, "openai": params.openai, "transformers": params.transformers, "seed": params.seed},
        default=repr,
        sort_keys=True,
    )
    with _worker_lock:
        if spec not in _worker_backends:
            _worker_backends[spec] = build_backend(params, windows)
        return _worker_backends[spec]


def dask_task(
    item: WorkItem, window: dict, ptype: PromptType, params: GenerateParams, store: WorkStore, windows: list[dict]
) -> str:
    backend = _backend_on_worker(params, windows)
    return run_item(item, window, ptype, backend, params.mode, store)


def dask_attempt(
    item: WorkItem, window: dict, ptype: PromptType, params: GenerateParams, windows: list[dict]
) -> Outcome:
    return attempt_item(item, window, ptype, _backend_on_worker(params, windows), params.mode)


def attempt_on_dask(
    items: list[WorkItem], windows: list[dict], types: list[PromptType], params: GenerateParams
) -> list[Outcome]:
    """Run `items` as tasks, storing nothing: the outcomes, in order, for the caller to judge."""
    from distributed import Client

    with Client(params.scheduler_address, timeout="30s") as client:
        [windows_ref] = client.scatter([windows], broadcast=True)
        futures = [
            client.submit(dask_attempt, item, windows[item.window], types[item.ptype], params, windows_ref, pure=False)
            for item in items
        ]
        return client.gather(futures)


def run_dask(
    pending: list[WorkItem], windows: list[dict], types: list[PromptType], params: GenerateParams, store: WorkStore
) -> Counter:
    """Submit items as tasks, keeping `concurrency` in flight. When a worker dies (a spot
    instance reclaimed), the scheduler reruns its tasks elsewhere, up to Dask's
    `distributed.scheduler.allowed-failures`; `task_retries` covers tasks that raise."""
    from distributed import Client, as_completed

    counts: Counter = Counter()
    with Client(params.scheduler_address, timeout="30s") as client:
        log.info("dask scheduler=%s workers=%d", params.scheduler_address, len(client.scheduler_info()["workers"]))
        [windows_ref] = client.scatter([windows], broadcast=True)

        def submit(item: WorkItem):
            return client.submit(
                dask_task,
                item,
                windows[item.window],
                types[item.ptype],
                params,
                store,
                windows_ref,
                key=f"generate-{item.key}",
                pure=False,
                retries=params.task_retries,
            )

        queue = iter(pending)
        first = [submit(item) for _, item in zip(range(max(1, params.concurrency)), queue, strict=False)]
        with _progress(len(pending)) as bar:
            running = as_completed(first)
            for future in running:
                _report(bar, counts, future.result())
                future.release()
                nxt = next(queue, None)
                if nxt is not None:
                    running.add(submit(nxt))
    return counts
