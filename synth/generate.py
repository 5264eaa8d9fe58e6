"""The generate stage's logic: plan work items, run the pending ones, rebuild the records.

A work item is (window, prompt type, generator config). Its result is stored under a hash
of those (synth/work_store.py), so a killed run resumes where it stopped, a new prompt
type or window generates only what is new, and a changed generator config (model,
temperature...) regenerates instead of reusing. The records are rebuilt from the store
in a fixed order, so they never hold a duplicate and the same store gives the same bytes.
README.md, "Generating at scale", says how to run and steer it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import random
from collections import Counter
from collections.abc import Iterable, Mapping

from common.params import ParamsError
from llm.base import ChatBackend, blames_the_item, client_error_status
from synth.executors import attempt_on_dask, run_dask, run_local
from synth.generate_params import GenerateParams
from synth.items import Outcome, WorkItem, attempt_item
from synth.prompt_types import PromptType
from synth.work_store import DONE, FAILED, WorkStore

log = logging.getLogger("generate")


def item_key(window: dict, ptype: PromptType, mode: str, fingerprint: dict, sample: int = 0) -> str:
    """Hash of everything that decides an item's output: editing a prompt, switching model
    or mode gives new keys (new work); anything else reuses the stored result. Sample 0 keeps
    the key it had before `samples_per_type` existed, so raising it only adds work."""
    spec = {
        "window": window["id"],
        "type": dataclasses.asdict(ptype) | {"weight": None, "description": None},
        "mode": mode,
        "generator": fingerprint,
    }
    if sample:
        spec["sample"] = sample
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def select_types(registry: list[PromptType], names: Iterable[str], weights: dict) -> list[PromptType]:
    by_name = {t.name: t for t in registry}
    unknown = [n for n in [*names, *weights] if n not in by_name]
    if unknown:
        raise ParamsError(f"generate: unknown prompt type(s) {', '.join(sorted(set(unknown)))}")
    chosen = [by_name[n] for n in names] if names else list(registry)
    return [dataclasses.replace(t, weight=float(weights.get(t.name, t.weight))) for t in chosen]


def draws_per_type(types: list[PromptType], default: int, overrides: Mapping[str, int]) -> dict[str, int]:
    """Draws per window of each type: `overrides` (generate.type_samples) or `default`
    (generate.samples_per_type). A name no type has is logged, not fatal: the default params
    name rules types a custom registry may lack."""
    if unused := sorted(set(overrides) - {t.name for t in types}):
        log.warning("generate.type_samples names types this run does not have: %s", ", ".join(unused))
    return {t.name: overrides.get(t.name, default) for t in types}


def samples_of(samples: int | Mapping[str, int], ptype: PromptType) -> int:
    """Draws per window of `ptype`: one count for every type, or a count per type name (default 1)."""
    return samples if isinstance(samples, int) else samples.get(ptype.name, 1)


def plan_items(
    windows: list[dict],
    types: list[PromptType],
    mode: str,
    fingerprint: dict,
    seed: int,
    samples: int | Mapping[str, int] = 1,
) -> list[WorkItem]:
    """Every item, in priority order: stride scheduling over types by weight (a type of
    weight 2 gets two items for each one of a weight-1 type), windows of each type in a
    seeded shuffle so a `--limit` run samples the whole corpus, not its first article; every
    window's first sample of a type comes before any window's second."""
    ranked = []
    for type_index, ptype in enumerate(types):
        if ptype.weight <= 0:
            continue
        order = list(range(len(windows)))
        random.Random(f"{seed}:{ptype.name}").shuffle(order)
        for sample in range(samples_of(samples, ptype)):
            for rank, w in enumerate(order, start=sample * len(order)):
                key = item_key(windows[w], ptype, mode, fingerprint, sample)
                ranked.append(((rank + 1) / ptype.weight, type_index, WorkItem(key, w, type_index, sample)))
    ranked.sort(key=lambda r: (r[0], r[1]))
    return [item for _, _, item in ranked]


def consolidate(
    store: WorkStore,
    windows: list[dict],
    types: list[PromptType],
    mode: str,
    fingerprint: dict,
    samples: int | Mapping[str, int] = 1,
) -> tuple[list[dict], dict[str, Counter], Counter]:
    """Records of every finished item, windows in file order, types in registry order, then
    samples; a sample that repeats an earlier record's question and answer is a `duplicate`."""
    done, failed = store.keys(DONE), store.keys(FAILED)
    records, stats, seen = [], Counter(), set()
    per_type: dict[str, Counter] = {t.name: Counter() for t in types}
    for window in windows:
        for ptype, sample in ((t, s) for t in types for s in range(samples_of(samples, t))):
            key = item_key(window, ptype, mode, fingerprint, sample)
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


def pending_items(
    items: list[WorkItem], done: set[str], failed: dict[str, str], retry_failed: bool, limit: int | None
) -> list[WorkItem]:
    """The items still to run, in priority order: not `done`, not `failed` (key -> reason)
    unless `retry_failed` or the failure was the server's (a store written before such
    failures were left unstored), at most `limit` of them."""
    skip = done if retry_failed else done | {key for key, reason in failed.items() if blames_the_item(reason)}
    pending = [item for item in items if item.key not in skip]
    return pending if limit is None else pending[:limit]


# Items run first, one at a time, with their results held back: when all of them fail with
# the same 4xx the configuration is wrong (model name, key), not the items, and nothing is
# stored. Four, so one prompt a server refuses (too long: 400) is not taken for a bad config.
PROBE_ITEMS = 4


class GenerateRunError(RuntimeError):
    """A run that must not pass as finished: a wrong configuration, or items left undone."""


def accept_probe(head: list[WorkItem], outcomes: list[Outcome], store: WorkStore) -> Counter:
    """The first PROBE_ITEMS items' outcomes, held back until here: raise GenerateRunError,
    storing nothing, when they all failed with one 4xx status; otherwise store them and
    return their tags counted."""
    statuses = {
        client_error_status(o.tag.removeprefix("failed:")) if o.tag.startswith("failed:") else None for o in outcomes
    }
    if outcomes and len(statuses) == 1 and None not in statuses:
        raise GenerateRunError(
            f"the first {len(head)} requests all failed with HTTP {statuses.pop()}, so the configuration is wrong, "
            f"not the items; nothing was stored. Server said: {outcomes[0].payload['error']}. Check "
            "generate.openai.model and base_url (400, 404) or the key in the variable generate.openai.api_key_env "
            "names (401, 403)"
        )
    for item, outcome in zip(head, outcomes, strict=True):
        outcome.store(store, item.key)
    return Counter(o.tag for o in outcomes)


def run_verdict(outcome: Counter) -> str | None:
    """Why the run must not pass as finished, or None: items left undone because the server was
    unreachable, overloaded or refused the key (not stored, a plain rerun retries them), or
    every item failed."""
    failed = {tag.removeprefix("failed:"): n for tag, n in outcome.items() if tag.startswith("failed:")}
    unstored = {reason: n for reason, n in failed.items() if not blames_the_item(reason)}
    total = sum(outcome.values())
    if unstored:
        return (
            f"{sum(unstored.values())} of {total} items could not be run ({_reasons(unstored)}): the server was "
            "unreachable, overloaded or refused the key. They are not stored: rerun the stage to run them"
        )
    if total and sum(failed.values()) == total:
        return (
            f"every one of the {total} items failed ({_reasons(failed)}); their replies are in the store's failed/ "
            "folder: fix the prompts or the model, then rerun with --retry-failed"
        )
    return None


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason}: {n}" for reason, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def run_pending(
    pending: list[WorkItem],
    windows: list[dict],
    types: list[PromptType],
    params: GenerateParams,
    backend: ChatBackend,
    store: WorkStore,
) -> Counter:
    """Outcome tag -> count, on the executor `generate.executor` names (a Dask worker builds
    its own backend from `params`), once accept_probe has checked the configuration on the
    first items, run one at a time."""
    head, rest = pending[:PROBE_ITEMS], pending[PROBE_ITEMS:]
    if params.executor == "dask":
        outcomes = attempt_on_dask(head, windows, types, params)
    else:
        outcomes = [attempt_item(item, windows[item.window], types[item.ptype], backend, params.mode) for item in head]
    counts = accept_probe(head, outcomes, store)
    if not rest:
        return counts
    if params.executor == "dask":
        return counts + run_dask(rest, windows, types, params, store)
    return counts + run_local(rest, windows, types, params, backend, store)


def generate_metrics(
    items: int, records: list[dict], per_type: dict[str, Counter], stats: Counter, generator: str, mode: str
) -> dict:
    """metrics/generate.json: skips and failures per type by reason (`skipped:<reason>`,
    `failed:<reason>`), failures also overall."""
    return {
        "items": items,
        "records": len(records),
        "pending": stats["pending"],
        "failed": {k.split(":", 1)[1]: v for k, v in sorted(stats.items()) if k.startswith("failed:")},
        "per_type": {name: dict(sorted(c.items())) for name, c in per_type.items()},
        "generator": generator,
        "mode": mode,
    }
