"""generate: windows × prompt types → chat training records, through a resumable work store.

A work item is (window, prompt type, generator config); its result is kept in a work store,
so a killed run resumes where it stopped and the output is rebuilt from the store in a fixed
order (synth/generate.py; README.md, "Generating at scale").

Backends (`generate.backend`): rules (offline, deterministic), openai (any OpenAI-compatible
server), transformers (a local model folder), or `package.module:factory` for your own.
Executors (`generate.executor`): local (threads, `concurrency` requests in flight) or dask
(tasks on a Dask distributed cluster at `scheduler_address`; a task whose worker dies is
rerun on another worker).

Input:  data/windows.jsonl, data/prompt_types.yaml
Output: data/generated.jsonl, metrics/generate.json, the store (data/work/generate/)

Examples:
  python -m stages.generate --params params.yaml --windows data/windows.jsonl \
      --types data/prompt_types.yaml --store data/work/generate \
      --out data/generated.jsonl --metrics metrics/generate.json
  # steer a long job: only the next 5,000 items, failed ones retried
  python -m stages.generate ... --limit 5000 --retry-failed

Exit status: 0 done; 2 bad params or input, or a wrong server configuration (the first
requests all failed with one 4xx: nothing is stored); 1 items left undone because the server
was unreachable, overloaded or refused the key (a plain rerun runs them), or every item failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from common.cli import setup_logging
from common.files import JsonlError, read_jsonl, write_json, write_jsonl
from common.params import ParamsError, load_section
from common.stores import shared_path
from corpus.windows import check_windows
from synth.backends import build_backend
from synth.choice_letters import balance_choice_letters
from synth.generate import (
    GenerateRunError,
    consolidate,
    draws_per_type,
    generate_metrics,
    pending_items,
    plan_items,
    run_pending,
    run_verdict,
    select_types,
)
from synth.generate_params import GenerateParams, check_params
from synth.priorities import prioritise, read_priorities
from synth.prompt_types import RegistryError, load_registry
from synth.work_store import DONE, WorkStore

log = logging.getLogger("generate")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--windows", type=Path, required=True)
    parser.add_argument("--types", type=Path, required=True, help="prompt-type registry (YAML)")
    parser.add_argument(
        "--store",
        type=Path,
        required=True,
        help="work store, relative to the repository every experiment copy shares (unless generate.store_url)",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=None, help="run at most this many pending items, then stop")
    parser.add_argument("--retry-failed", action="store_true", help="rerun items that failed before")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params = load_section(args.params, "generate", GenerateParams)
        check_params(params, f"{args.params}:generate")
        types = select_types(load_registry(args.types), params.types, params.weights)
        windows = list(read_jsonl(args.windows))
        weights = read_priorities(Path(params.priorities)) if params.priorities else None
        check_windows(windows, args.windows)
        backend = build_backend(params, windows)
    except (ParamsError, RegistryError, JsonlError, FileNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    store = WorkStore(params.store_url or str(shared_path(args.store)))
    if removed := store.remove_stale_temps():
        log.info("removed_stale_temps=%d store=%s", removed, store.url)
    # The backend's name is part of the key too: two backends may share model and settings.
    fingerprint = {"backend": backend.name, **backend.fingerprint()}
    samples = draws_per_type(types, params.samples_per_type, params.type_samples)
    items = plan_items(windows, types, params.mode, fingerprint, params.seed, samples)
    if weights is not None:  # a probe's priorities: what the student fails is generated first
        items = prioritise(items, windows, types, weights)
    done = store.keys(DONE)
    retry_failed = params.retry_failed or args.retry_failed
    pending = pending_items(items, done, {} if retry_failed else store.failed_reasons(), retry_failed, args.limit)
    log.info(
        "items=%d done=%d to_run=%d backend=%s executor=%s",
        len(items),
        len(done),
        len(pending),
        backend.name,
        params.executor,
    )
    verdict = None
    try:
        if pending:
            outcome = run_pending(pending, windows, types, params, backend, store)
            log.info("ran=%d outcome=%s", len(pending), dict(outcome))
            verdict = run_verdict(outcome)
    except GenerateRunError as exc:
        log.error("%s", exc)
        return 2
    finally:
        backend.close()
    records, per_type, stats = consolidate(store, windows, types, params.mode, fingerprint, samples)
    choice_types = {t.name for t in types if t.format == "multiple_choice"}
    letters = balance_choice_letters(records, choice_types, params.seed)
    write_jsonl(args.out, records)
    metrics = generate_metrics(len(items), records, per_type, stats, backend.name, params.mode)
    write_json(args.metrics, metrics | {"choice_correct_letters": letters})
    log.info("records=%d pending=%d out=%s", len(records), stats["pending"], args.out)
    if verdict:
        log.error("%s", verdict)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
