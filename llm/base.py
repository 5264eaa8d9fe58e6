"""What every LLM backend shares: the ChatBackend protocol, its error type, reply cleanup.

A chat backend turns a list of {"role", "content"} messages into the assistant's reply
text. Backends are called from many threads at once (the local executor keeps
`generate.concurrency` requests in flight), so `chat` must be thread-safe.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

THINK_BLOCK = re.compile(r"<think>.*?</think>\s*", re.DOTALL | re.IGNORECASE)
UNCLOSED_THINK = re.compile(r"<think>.*", re.DOTALL | re.IGNORECASE)


class LLMError(RuntimeError):
    """A request that failed for good; `reason` is a short tag counted in metrics
    (e.g. "timeout", "http_500", "connection", "empty_reply", "truncated")."""

    def __init__(self, reason: str, message: str = "", raw: str | None = None):
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.raw = raw  # the reply text, when there was one

    @property
    def transient(self) -> bool:
        """The server could not be reached or was overloaded (connection, timeout, 429, 5xx):
        the item itself is fine, so it is not stored as failed and a plain rerun retries it."""
        return is_transient(self.reason)


def is_transient(reason: str) -> bool:
    if reason in ("connection", "timeout"):
        return True
    status = reason.removeprefix("http_")
    return reason.startswith("http_") and status.isdigit() and (status == "429" or status.startswith("5"))


def blames_the_item(reason: str) -> bool:
    """Whether a failure belongs to the request itself (its reply would not parse, its prompt
    was refused with a 400), so storing it as the item's result is right; an unreachable,
    overloaded or unauthorised server (a missing key: 401, 403) says nothing about the item."""
    return not is_transient(reason) and client_error_status(reason) not in (401, 403)


def client_error_status(reason: str) -> int | None:
    """The HTTP status of a 4xx that retrying cannot fix (wrong model 400/404, key 401/403);
    None for any other reason."""
    status = reason.removeprefix("http_")
    if reason.startswith("http_") and status.isdigit() and status.startswith("4") and status != "429":
        return int(status)
    return None


class ChatBackend(Protocol):
    """The one interface of every backend: the chat models (openai, transformers), the rules
    generator and a user's `package.module:factory`. Subclass it to inherit the defaults of
    `max_in_flight`, `compose` and `close`."""

    name: str  # "openai:Qwen/Qwen3-4B", "transformers:/models/x": goes into record meta
    # At most this many calls at once; None: as many as the caller keeps in flight
    # (generate.concurrency). 1: pure CPU work that threads cannot speed up.
    max_in_flight: int | None = None

    def chat(self, messages: list[dict[str, str]]) -> str: ...

    def fingerprint(self) -> dict:
        """Everything that changes the output (model, temperature, max tokens...): part of
        each work item's key, so a new generator config regenerates instead of reusing."""
        ...

    def compose(self, task: Any, window: dict, sample: int = 0) -> str | None:
        """A backend that writes a generate item's reply itself, without a prompt (the rules
        generator), returns it here; a chat model returns None and is prompted through chat().
        `task` is the item's prompt type, `sample` which draw of it (generate.samples_per_type)."""
        return None

    def close(self) -> None:
        """Release connections, threads, the model; the default has nothing to release."""
        return None


DECLINED = re.compile(r"^\W*none\W*$", re.IGNORECASE)
REFUSAL = re.compile(
    r"\bas an ai\b|\b(?:ai|large) language model\b|^\W*(?:i'?m|i am) (?:sorry|afraid|unable)\b"
    r"|\bi (?:cannot|can ?not|can'?t|won'?t|am unable to|am not able to) (?:help|assist|answer|provide|comply|do that)\b",
    re.IGNORECASE | re.MULTILINE,
)


def declined(reply: str) -> bool:
    """The prompts let a model answer NONE when the text lacks what the type needs (no
    date for `when`): an honest skip, not a format failure."""
    return bool(DECLINED.match(reply.strip()))


def refusal(text: str) -> re.Match | None:
    """A refusal or an assistant talking about itself ("As an AI language model...", "I'm
    sorry, but I cannot help..."): never an answer worth keeping."""
    return REFUSAL.search(text)


def strip_think(text: str) -> str:
    """Remove Qwen3-style reasoning: closed <think>…</think> blocks, and an unclosed
    <think> to the end (a reply cut off while still thinking has no answer in it)."""
    text = THINK_BLOCK.sub("", text)
    text = UNCLOSED_THINK.sub("", text)
    return text.strip()
