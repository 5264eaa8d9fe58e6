"""One work item of the generate stage: ask the backend, parse the reply, store the record.

Kept apart from synth/generate.py so a Dask worker imports only this and its backend.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from llm.base import ChatBackend, LLMError, blames_the_item, declined, refusal
from synth.prompt_types import (
    PARSERS,
    Parsed,
    ParseError,
    PromptType,
    check_expectations,
    parse_answer_only,
    parse_question_only,
)
from synth.rules_generator import Unsupported
from synth.work_store import DONE, FAILED, WorkStore


@dataclass(frozen=True)
class WorkItem:
    key: str  # hash of (window, prompt type, mode, generator config)
    window: int  # index into the windows list
    ptype: int  # index into the selected prompt types
    sample: int = 0  # which of generate.samples_per_type draws of this (window, type)


@dataclass(frozen=True)
class Outcome:
    tag: str  # "ok", "skipped:<reason>" or "failed:<reason>": what the caller counts
    state: str | None  # the store folder it belongs in (DONE, FAILED); None: not stored
    payload: dict

    def store(self, store: WorkStore, key: str) -> None:
        if self.state is not None:
            store.put(self.state, key, self.payload)


class Skip(Exception):
    """The item yields no record, by design (e.g. the rules backend cannot do this type)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def ask(backend: ChatBackend, ptype: PromptType, window: dict, mode: str, sample: int = 0) -> Parsed:
    """Get and parse one reply; raises Skip, LLMError or ParseError. A chat model's samples of
    one (window, type) differ by its sampling (temperature > 0), the rules backend's by seed."""
    try:
        composed = backend.compose(ptype, window, sample)  # the rules backend writes replies itself
    except Unsupported as exc:
        raise Skip(exc.reason) from exc
    if composed is not None:
        return check_expectations(ptype, PARSERS[ptype.format](composed))
    if mode == "single":
        reply = backend.chat([{"role": "user", "content": ptype.render(ptype.prompt, window)}])
        check_declined(reply)
        try:
            return check_expectations(ptype, PARSERS[ptype.format](reply))
        except ParseError as exc:
            raise LLMError(f"parse_{exc.reason}", str(exc), raw=reply) from exc
    if not ptype.chain_question:
        raise Skip("no_chain_prompt")
    q_reply = backend.chat([{"role": "user", "content": ptype.render(ptype.chain_question, window)}])
    check_declined(q_reply)
    try:
        question = parse_question_only(q_reply)
    except ParseError as exc:
        raise LLMError(f"parse_{exc.reason}", str(exc), raw=q_reply) from exc
    a_reply = backend.chat([{"role": "user", "content": ptype.render(ptype.chain_answer, window, question)}])
    check_declined(a_reply)  # the answer prompt invites NONE too: never a training answer
    try:
        return Parsed(question, parse_answer_only(a_reply))
    except ParseError as exc:
        raise LLMError(f"parse_{exc.reason}", str(exc), raw=a_reply) from exc


def check_declined(reply: str) -> None:
    """Raise Skip for a reply that declines (NONE) or refuses: no record, and not a failure
    to retry (asking again gets the same answer)."""
    if declined(reply):
        raise Skip("model_declined")
    if refusal(reply):
        raise Skip("model_refused")


def make_record(key: str, ptype: PromptType, window: dict, parsed: Parsed, generator: str, mode: str) -> dict:
    """A chat record, the format every later stage reads (README.md, "The pipeline")."""
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


def attempt_item(item: WorkItem, window: dict, ptype: PromptType, backend: ChatBackend, mode: str) -> Outcome:
    """Run one item; nothing is stored yet (the caller may hold the first results back)."""
    base = {"key": item.key, "window": window["id"], "type": ptype.name, "mode": mode, "generator": backend.name}
    try:
        parsed = ask(backend, ptype, window, mode, item.sample)
    except Skip as exc:
        return Outcome(f"skipped:{exc.reason}", DONE, base | {"records": [], "skipped": exc.reason})
    except ParseError as exc:  # rules output that its own parser rejects: a bug, keep it visible
        payload = base | {"reason": f"parse_{exc.reason}", "error": str(exc), "raw": None, "time": time.time()}
        return Outcome(f"failed:parse_{exc.reason}", FAILED, payload)
    except LLMError as exc:
        payload = base | {"reason": exc.reason, "error": str(exc), "raw": exc.raw, "time": time.time()}
        # A server that was down or refused the key would leave the item failed for good:
        # not stored, so a plain rerun runs it again.
        return Outcome(f"failed:{exc.reason}", FAILED if blames_the_item(exc.reason) else None, payload)
    record = make_record(item.key, ptype, window, parsed, backend.name, mode)
    return Outcome("ok", DONE, base | {"records": [record], "skipped": None})


def run_item(item: WorkItem, window: dict, ptype: PromptType, backend: ChatBackend, mode: str, store: WorkStore) -> str:
    """Run one item and store its result; returns the outcome tag counted by the caller
    ("ok", "skipped:<reason>" or "failed:<reason>")."""
    outcome = attempt_item(item, window, ptype, backend, mode)
    outcome.store(store, item.key)
    return outcome.tag
