"""generate: windows × prompt types → chat training records, through a resumable work store.

A work item is (window, prompt type, generator config). Its result is stored under a hash
of those (synth/work_store.py), so a killed run resumes where it stopped, a new prompt
type or window generates only what is new, and a changed generator config (model,
temperature…) regenerates instead of reusing. The output JSONL is rebuilt from the store
in a fixed order, so it never holds a duplicate and the same store gives the same bytes.

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
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import random
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from common.cli import setup_logging
from common.io import JsonlError, read_jsonl, write_json, write_jsonl
from llm.openai_backend import OpenAIParams
from llm.transformers_backend import TransformersParams
from common.params import ParamsError, load_section
from synth.prompt_types import PromptType, RegistryError, load_registry
from synth.work_store import DONE, FAILED, WorkStore
from synth.items import WorkItem, build_backend

log = logging.getLogger("generate")


@dataclass(frozen=True)
class GenerateParams:
    backend: str  # rules | openai | transformers | package.module:factory
    mode: str  # single (one call returns question and answer) | chain (question, then answer)
    types: tuple[str, ...]  # prompt types to run; empty = every type in the registry
    weights: dict  # per-type priority overrides, e.g. {contrast_person: 3.0}
    seed: int  # window order per type and the rules backend's choices
    executor: str  # local | dask
    concurrency: int  # requests in flight (local) / tasks in flight (dask)
    scheduler_address: str  # dask: tcp://host:8786 of a running scheduler
    task_retries: int  # dask: reruns of a task that raised (worker deaths are retried anyway)
    store_url: str  # "" = the --store folder; or an fsspec URL (s3://bucket/ww2lm/generate)
    retry_failed: bool  # rerun items whose reply was unusable last time
    openai: OpenAIParams
    transformers: TransformersParams


def item_key(window: dict, ptype: PromptType, mode: str, fingerprint: dict) -> str:
    """Hash of everything that decides an item's output: editing a prompt, switching model
    or mode gives new keys (new work); anything else reuses the stored result."""
    spec = {
        "window": window["id"],
        "type": dataclasses.asdict(ptype) | {"weight": None, "description": None},
        "mode": mode,
        "generator": fingerprint,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def select_types(registry: list[PromptType], names: Iterable[str], weights: dict) -> list[PromptType]:
    by_name = {t.name: t for t in registry}
    unknown = [n for n in [*names, *weights] if n not in by_name]
    if unknown:
        raise ParamsError(f"generate: unknown prompt type(s) {', '.join(sorted(set(unknown)))}")
    chosen = [by_name[n] for n in names] if names else list(registry)
    return [dataclasses.replace(t, weight=float(weights.get(t.name, t.weight))) for t in chosen]


def plan_items(windows: list[dict], types: list[PromptType], mode: str, fingerprint: dict, seed: int) -> list[WorkItem]:
    """Every item, in priority order: stride scheduling over types by weight (a type of
    weight 2 gets two items for each one of a weight-1 type), windows of each type in a
    seeded shuffle so a `--limit` run samples the whole corpus, not its first article."""
    ranked = []
    for type_index, ptype in enumerate(types):
        if ptype.weight <= 0:
            continue
        order = list(range(len(windows)))
        random.Random(f"{seed}:{ptype.name}").shuffle(order)
        for rank, w in enumerate(order):
            key = item_key(windows[w], ptype, mode, fingerprint)
            ranked.append(((rank + 1) / ptype.weight, type_index, WorkItem(key, w, type_index)))
    ranked.sort(key=lambda r: (r[0], r[1]))
    return [item for _, _, item in ranked]


def consolidate(store: WorkStore, windows: list[dict], types: list[PromptType], mode: str, fingerprint: dict):
    """Records of every finished item, windows in file order, types in registry order."""
    done, failed = store.keys(DONE), store.keys(FAILED)
    records, stats, seen = [], Counter(), set()
    per_type: dict[str, Counter] = {t.name: Counter() for t in types}
    for window in windows:
        for ptype in types:
            key = item_key(window, ptype, mode, fingerprint)
            if key in done:
                payload = store.get(DONE, key)
                if payload["records"]:
                    for record in payload["records"]:
                        # overlapping windows (stride < size) can ask the same thing twice
                        text = tuple(" ".join(m["content"].lower().split()) for m in record["messages"])
                        if text in seen:
                            per_type[ptype.name]["duplicate"] += 1
                            continue
                        seen.add(text)
                        records.append(record)
                        per_type[ptype.name]["records"] += 1
                else:
                    per_type[ptype.name][f"skipped:{payload['skipped']}"] += 1
            elif key in failed:
                reason = (store.get(FAILED, key) or {}).get("reason", "unknown")
                per_type[ptype.name][f"failed:{reason}"] += 1
                stats[f"failed:{reason}"] += 1
            else:
                per_type[ptype.name]["pending"] += 1
                stats["pending"] += 1
    return records, per_type, stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--windows", type=Path, required=True)
    parser.add_argument("--types", type=Path, required=True, help="prompt-type registry (YAML)")
    parser.add_argument("--store", type=Path, required=True, help="local work store (unless generate.store_url)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=None, help="run at most this many pending items, then stop")
    parser.add_argument("--retry-failed", action="store_true", help="rerun items that failed before")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params = load_section(args.params, "generate", GenerateParams)
        if params.mode not in ("single", "chain"):
            raise ParamsError(f"{args.params}:generate.mode: {params.mode!r} is not single or chain")
        if params.executor not in ("local", "dask"):
            raise ParamsError(f"{args.params}:generate.executor: {params.executor!r} is not local or dask")
        if params.executor == "dask" and not params.scheduler_address:
            raise ParamsError(f"{args.params}:generate.scheduler_address: executor dask needs tcp://host:port")
        types = select_types(load_registry(args.types), params.types, params.weights)
        windows = list(read_jsonl(args.windows))
        backend = build_backend(params, windows)
    except (ParamsError, RegistryError, JsonlError, FileNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    store = WorkStore(params.store_url or str(args.store))
    # The backend's name is part of the key too: two backends may share model and settings.
    fingerprint = {"backend": backend.name, **backend.fingerprint()}
    items = plan_items(windows, types, params.mode, fingerprint, params.seed)
    done = store.keys(DONE)
    skip = done if (params.retry_failed or args.retry_failed) else done | store.keys(FAILED)
    pending = [item for item in items if item.key not in skip]
    if args.limit is not None:
        pending = pending[: args.limit]
    log.info(
        "items=%d done=%d to_run=%d backend=%s executor=%s",
        len(items),
        len(done),
        len(pending),
        backend.name,
        params.executor,
    )
    try:
        if pending:
            from synth.executors import run_dask, run_local

            if params.executor == "dask":
                outcome = run_dask(pending, windows, types, params, store)
            else:
                outcome = run_local(pending, windows, types, params, backend, store)
            log.info("ran=%d outcome=%s", len(pending), dict(outcome))
    finally:
        close = getattr(backend, "close", None)
        if close:
            close()
    records, per_type, stats = consolidate(store, windows, types, params.mode, fingerprint)
    write_jsonl(args.out, records)
    write_json(
        args.metrics,
        {
            "items": len(items),
            "records": len(records),
            "pending": stats["pending"],
            "failed": {k.split(":", 1)[1]: v for k, v in sorted(stats.items()) if k.startswith("failed:")},
            "per_type": {name: dict(sorted(c.items())) for name, c in per_type.items()},
            "generator": backend.name,
            "mode": params.mode,
        },
    )
    log.info("records=%d pending=%d out=%s", len(records), stats["pending"], args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
