"""One work item of the generate stage: build the backend, run the item, shape its record.

Kept apart from stages/generate.py so a Dask worker imports only this (and the backend it
needs), never the stage's CLI.
"""

from __future__ import annotations

import hashlib
import importlib
import time
from dataclasses import dataclass

from llm.base import LLMError
from synth.prompt_types import (
    PARSERS,
    Parsed,
    ParseError,
    PromptType,
    check_expectations,
    declined,
    parse_answer_only,
    parse_question_only,
)
from synth.work_store import DONE, FAILED, WorkStore


@dataclass(frozen=True)
class WorkItem:
    key: str  # hash of (window, prompt type, mode, generator config)
    window: int  # index into the windows list
    ptype: int  # index into the selected prompt types


class Skip(Exception):
    """The item yields no record, by design (e.g. the rules backend cannot do this type)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def build_backend(params, windows: list[dict]):
    """The backend named by generate.backend; `pkg.module:factory` is called with
    (params, windows) so a user can plug in their own."""
    name = params.backend
    if name == "rules":
        from synth.rules_generator import RulesBackend

        return RulesBackend(windows, seed=params.seed)
    if name == "openai":
        from llm.openai_backend import OpenAIChat

        return OpenAIChat(params.openai, concurrency=params.concurrency)
    if name == "transformers":
        from llm.transformers_backend import TransformersChat

        return TransformersChat(params.transformers)
    if ":" in name:
        module, _, factory = name.partition(":")
        return getattr(importlib.import_module(module), factory)(params, windows)
    raise ValueError(f"generate.backend: unknown backend {name!r} (rules, openai, transformers or pkg.module:factory)")


def ask(backend, ptype: PromptType, window: dict, mode: str) -> Parsed:
    """Get and parse one reply; raises Skip, LLMError or ParseError."""
    if hasattr(backend, "reply"):  # the rules backend answers a prompt type directly
        from synth.rules_generator import Unsupported

        try:
            reply = backend.reply(ptype, window)
        except Unsupported as exc:
            raise Skip(exc.reason) from exc
        return check_expectations(ptype, PARSERS[ptype.format](reply))
    if mode == "single":
        reply = backend.chat([{"role": "user", "content": ptype.render(ptype.prompt, window)}])
        if declined(reply):
            raise Skip("model_declined")
        try:
            return check_expectations(ptype, PARSERS[ptype.format](reply))
        except ParseError as exc:
            raise LLMError(f"parse_{exc.reason}", str(exc), raw=reply) from exc
    if not ptype.chain_question:
        raise Skip("no_chain_prompt")
    q_reply = backend.chat([{"role": "user", "content": ptype.render(ptype.chain_question, window)}])
    if declined(q_reply):
        raise Skip("model_declined")
    try:
        question = parse_question_only(q_reply)
    except ParseError as exc:
        raise LLMError(f"parse_{exc.reason}", str(exc), raw=q_reply) from exc
    a_reply = backend.chat([{"role": "user", "content": ptype.render(ptype.chain_answer, window, question)}])
    try:
        return Parsed(question, parse_answer_only(a_reply))
    except ParseError as exc:
        raise LLMError(f"parse_{exc.reason}", str(exc), raw=a_reply) from exc


def make_record(key: str, ptype: PromptType, window: dict, parsed: Parsed, generator: str, mode: str) -> dict:
    """A chat record in the DESIGN.md format."""
    return {
        "id": hashlib.sha256(key.encode()).hexdigest()[:16],
        "kind": ptype.kind,
        "type": ptype.name,
        "window": window["id"],
        "article": window["article"],
        "messages": [
            {"role": "user", "content": parsed.question},
            {"role": "assistant", "content": parsed.answer},
        ],
        "meta": {"generator": generator, "mode": mode, "family": ptype.family, **parsed.meta},
    }


def run_item(item: WorkItem, window: dict, ptype: PromptType, backend, mode: str, store: WorkStore) -> str:
    """Run one item and store its result; returns the outcome tag counted by the caller
    ("ok", "skipped:<reason>" or "failed:<reason>")."""
    base = {"key": item.key, "window": window["id"], "type": ptype.name, "mode": mode, "generator": backend.name}
    try:
        parsed = ask(backend, ptype, window, mode)
    except Skip as exc:
        store.put(DONE, item.key, base | {"records": [], "skipped": exc.reason})
        return f"skipped:{exc.reason}"
    except ParseError as exc:  # rules output that its own parser rejects: a bug, keep it visible
        store.put(
            FAILED,
            item.key,
            base | {"reason": f"parse_{exc.reason}", "error": str(exc), "raw": None, "time": time.time()},
        )
        return f"failed:parse_{exc.reason}"
    except LLMError as exc:
        store.put(
            FAILED, item.key, base | {"reason": exc.reason, "error": str(exc), "raw": exc.raw, "time": time.time()}
        )
        return f"failed:{exc.reason}"
    record = make_record(item.key, ptype, window, parsed, backend.name, mode)
    store.put(DONE, item.key, base | {"records": [record], "skipped": None})
    return "ok"
