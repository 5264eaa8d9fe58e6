"""One loaded model answering chat requests one at a time, in arrival order.

The server (serving/api.py) hands every request to a `ChatEngine`. Generation is compute
bound and `model.inference.generate` decodes one sequence at a time, so requests are queued:
one worker thread runs them first come, first served (two at once would only share the same
cores), and a request waiting in the queue costs nothing but its place. `--max-queue` bounds the queue; beyond it a request is refused
(HTTP 429) instead of waiting minutes.

Prompts are built exactly as chat and evaluate build them (model.inference.chat_prompt, so
user text is encoded as text: a typed `<|im_start|>` never becomes a control token), and the
reply is `model.inference.generate` + `incremental_text`: for the same messages, sampling
arguments and seed the text equals `model.inference.answer`'s.

OpenAI's `stop` strings are matched on the text: text that might be the start of a stop string
is held back until it is clear it is not, and the reply ends before the first match.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from dataset.tokenizer import Tokenizer
from model.gpt import GPT
from model.inference import STOPPED, chat_prompt, generate, incremental_text

# OpenAI finish reasons: "stop" (the model ended its turn or a stop string matched), "length"
FINISH_STOP, FINISH_LENGTH = "stop", "length"


class RequestError(ValueError):
    """A request the model cannot serve; `code` and `param` follow OpenAI's error object."""

    def __init__(self, message: str, code: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.code, self.param, self.status = message, code, param, status


@dataclass(frozen=True)
class Sampling:
    """The sampling arguments of one request, OpenAI's names and defaults (temperature 1, top_p 1)."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass
class Reply:
    """What one request produced so far; filled while the pieces stream."""

    prompt_tokens: int
    completion_tokens: int = 0
    finish_reason: str | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)


class StopMatcher:
    """Cuts a stream of text pieces at the first of several stop strings.

    `feed` returns the text that is safe to emit now: everything except a tail that could still
    grow into a stop string; `finish` returns the held tail when the stream ends unmatched.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""
        self.matched = False

    def feed(self, piece: str) -> str:
        self.pending += piece
        cut = min((i for s in self.stops if (i := self.pending.find(s)) >= 0), default=-1)
        if cut >= 0:
            self.matched = True
            out, self.pending = self.pending[:cut], ""
            return out
        hold = max((k for s in self.stops for k in range(1, len(s)) if self.pending.endswith(s[:k])), default=0)
        out, self.pending = self.pending[: len(self.pending) - hold], self.pending[len(self.pending) - hold :]
        return out

    def finish(self) -> str:
        out, self.pending = self.pending, ""
        return out


class ChatEngine:
    """A model, its tokenizer and the queue its requests wait in."""

    def __init__(self, model: GPT, tokenizer: Tokenizer, name: str, max_queue: int = 64) -> None:
        if tokenizer.vocab_size != model.config.vocab_size:
            raise ValueError(
                f"tokenizer has {tokenizer.vocab_size} tokens but the model was trained on {model.config.vocab_size}"
            )
        self.model, self.tokenizer, self.name, self.max_queue = model, tokenizer, name, max_queue
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate")  # the queue
        self._waiting = 0
        self._lock = threading.Lock()

    @property
    def context_length(self) -> int:
        return self.model.config.context_length

    def prompt_ids(self, messages: Sequence[dict]) -> list[int]:
        """The prompt of `messages`; RequestError when it leaves no room for one token of answer."""
        try:
            ids = chat_prompt(self.tokenizer, messages)
        except ValueError as exc:  # an unknown role
            raise RequestError(str(exc), "invalid_value", "messages") from exc
        if len(ids) >= self.context_length:
            raise RequestError(
                f"This model's maximum context length is {self.context_length} tokens. However, your messages "
                f"resulted in {len(ids)} tokens (and at least 1 is needed for the answer). Please shorten them.",
                "context_length_exceeded",
                "messages",
            )
        return ids

    def pieces(self, prompt: list[int], sampling: Sampling, reply: Reply) -> Iterator[str]:
        """The reply's text pieces (runs in the worker thread); sets reply.finish_reason at the end."""
        tokens = generate(
            self.model,
            prompt,
            sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            stop_ids={self.tokenizer.im_end_id},
            seed=sampling.seed,
        )
        reason = None

        def counted() -> Iterator[int]:
            nonlocal reason
            reason = yield from tokens

        matcher = StopMatcher(sampling.stop)
        stream = incremental_text(self.tokenizer, counted_tokens(counted(), reply))
        for piece in stream:
            if reply.cancelled.is_set():  # the client went away: free the worker for the next request
                reply.finish_reason = FINISH_LENGTH
                return
            if text := matcher.feed(piece):
                yield text
            if matcher.matched:
                reply.finish_reason = FINISH_STOP
                return
        if tail := matcher.finish():
            yield tail
        reply.finish_reason = FINISH_STOP if reason == STOPPED else FINISH_LENGTH

    def admit(self) -> None:
        """Take a place in the queue, or RequestError(429) when it is full."""
        with self._lock:
            if self._waiting >= self.max_queue:
                raise RequestError(
                    f"server busy: {self._waiting} requests queued (--max-queue {self.max_queue}); retry later",
                    "rate_limit_exceeded",
                    status=429,
                )
            self._waiting += 1

    def release(self) -> None:
        with self._lock:
            self._waiting -= 1

    def describe(self) -> dict:
        """The model's shape and size, shown by /v1/models and the chat page."""
        return {
            **self.model.config.to_dict(),
            "num_params": self.model.num_params(),
            "tokenizer_vocab_size": self.tokenizer.vocab_size,
        }


def counted_tokens(tokens: Iterator[int], reply: Reply) -> Iterator[int]:
    for token in tokens:
        reply.completion_tokens += 1
        yield token
