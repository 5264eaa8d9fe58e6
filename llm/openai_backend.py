"""The `openai` generator backend: chat completions from any OpenAI-compatible server.

vLLM, SGLang, llama.cpp server, Ollama and LM Studio all serve POST {base_url}/chat/completions
in the OpenAI request/response shape (https://platform.openai.com/docs/api-reference/chat/create).
We speak it with plain httpx rather than the `openai` SDK so that retries, timeouts and the
failure reasons are ours: every request either returns the reply text or raises an LLMError
whose `reason` the generate stage counts in its metrics.

- `concurrency` keep-alive connections, each in its own one-connection httpx.Client that a
  request checks out and hands back: at most `concurrency` requests are in flight, and each
  reuses a connection instead of reconnecting. Not one shared client with a `concurrency`-sized
  pool: httpcore rescans every pooled connection (and polls each idle socket) twice per
  request, O(n^2) in the pool size (https://github.com/encode/httpcore/pull/1035); at 64
  connections that took 2-3 ms of GIL-held CPU per request, twice the rest of the request.
- Qwen3 thinks before answering unless its chat template gets enable_thinking=False, which
  vLLM and SGLang pass through as `chat_template_kwargs`
  (https://qwen.readthedocs.io/en/latest/deployment/vllm.html). A server that rejects the
  unknown field (HTTP 400 naming it) is asked again without it, and the client stops sending
  it; any <think> block in the reply is stripped either way.
- 429, 5xx, timeouts, dropped connections and unusable 200 replies are retried with
  exponential backoff, honouring Retry-After; other 4xx fail at once (retrying cannot help).
- `timeout_seconds` bounds the whole request, not only each read: a server trickling a byte
  every half second is cut off at the deadline like one that never answers.

Example:
  chat = OpenAIChat(OpenAIParams(base_url="http://127.0.0.1:8000/v1", model="Qwen/Qwen3-4B", ...))
  text = chat.chat([{"role": "user", "content": "Who commanded the 6th Army?"}])
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

from llm.base import ChatBackend, LLMError, strip_think
from llm.params import OpenAIParams

log = logging.getLogger("generate.openai")

TEMPLATE_KWARGS_FIELD = "chat_template_kwargs"
# FastAPI-based servers answer an unexpected field with 422 rather than 400.
REJECTED_FIELD_STATUSES = {400, 422}


class RequestDeadline(Exception):
    """A reply still arriving when timeout_seconds ran out (counted as a timeout)."""


class OpenAIChat(ChatBackend):
    """A thread-safe ChatBackend for one model on one OpenAI-compatible server."""

    def __init__(self, params: OpenAIParams, concurrency: int = 8, sleep: Callable[[float], None] = time.sleep):
        if not params.base_url.startswith(("http://", "https://")):
            # Caught here: httpx would raise UnsupportedProtocol on every attempt, after backoffs.
            raise ValueError(f"generate.openai.base_url: expected http(s)://host:port/v1, got {params.base_url!r}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.params = params
        self.name = f"openai:{params.model}"
        self.sleep = sleep
        self.url = params.base_url.rstrip("/") + "/chat/completions"
        headers = {"Accept": "application/json"}
        api_key = os.environ.get(params.api_key_env, "") if params.api_key_env else ""
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        # One TLS context for all: building one loads the CA bundle (~0.1 s each).
        tls = httpx.create_ssl_context()
        self._clients = [
            httpx.Client(
                headers=headers,
                timeout=httpx.Timeout(params.timeout_seconds),
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                verify=tls,
            )
            for _ in range(concurrency)
        ]
        # LIFO: with fewer requests than clients in flight, the same warm connections serve them.
        self._idle: queue.LifoQueue[httpx.Client] = queue.LifoQueue()
        for client in self._clients:
            self._idle.put(client)
        self._lock = threading.Lock()
        self._send_template_kwargs = not params.enable_thinking

    def fingerprint(self) -> dict:
        # Not the url or the key: the same model served elsewhere gives the same items.
        return {
            "model": self.params.model,
            "temperature": self.params.temperature,
            "top_p": self.params.top_p,
            "max_tokens": self.params.max_tokens,
            "enable_thinking": self.params.enable_thinking,
        }

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def __enter__(self) -> OpenAIChat:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _body(self, messages: list[dict[str, str]], with_template_kwargs: bool) -> dict:
        body = {
            "model": self.params.model,
            "messages": messages,
            "temperature": self.params.temperature,
            "top_p": self.params.top_p,
            "max_tokens": self.params.max_tokens,
        }
        if with_template_kwargs:
            body[TEMPLATE_KWARGS_FIELD] = {"enable_thinking": False}
        return body

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return max(0.0, min(float(retry_after), self.params.max_backoff_seconds))
            except ValueError:
                pass  # an HTTP-date Retry-After: fall back to our own schedule
        return min(self.params.backoff_seconds * 2**attempt, self.params.max_backoff_seconds)

    def _stop_sending_template_kwargs(self, error_text: str) -> None:
        with self._lock:  # many threads may hit the same 400 at once; warn once
            if not self._send_template_kwargs:
                return
            self._send_template_kwargs = False
        log.warning(
            "server=%s rejects=%s action=resend_without_it thinking_not_disabled=1 error=%r",
            self.params.base_url,
            TEMPLATE_KWARGS_FIELD,
            error_text[:200],
        )

    @contextmanager
    def _connection(self) -> Iterator[httpx.Client]:
        """A client no other thread is using. Waiting here for one to come back is not the
        server's fault, so it has no timeout and never counts as a "timeout" failure."""
        client = self._idle.get()
        try:
            yield client
        finally:
            self._idle.put(client)

    def _post(self, body: dict) -> tuple[int, httpx.Headers, bytes]:
        """(status, headers, body) of one POST, read whole within timeout_seconds. httpx's
        timeout bounds each read, not the request: a server that trickles a byte at a time
        would hold a worker forever, so the body is streamed against an overall deadline."""
        with self._connection() as client:
            deadline = time.monotonic() + self.params.timeout_seconds
            with client.stream("POST", self.url, json=body) as response:
                chunks = []
                for chunk in response.iter_bytes():
                    chunks.append(chunk)
                    if time.monotonic() > deadline:
                        raise RequestDeadline(f"reply not complete after timeout_seconds={self.params.timeout_seconds}")
                return response.status_code, response.headers, b"".join(chunks)

    def chat(self, messages: list[dict[str, str]]) -> str:
        """The assistant's reply, <think> blocks removed; raises LLMError when it fails for good
        (`LLMError.transient` says whether the server, not the request, was at fault)."""
        attempt = 0
        while True:
            with_template_kwargs = self._send_template_kwargs
            retry_after: str | None = None
            try:
                status, headers, data = self._post(self._body(messages, with_template_kwargs))
            except (httpx.TimeoutException, RequestDeadline) as exc:  # before TransportError: it is one
                reason, problem = "timeout", f"{type(exc).__name__}: {exc}"
            except httpx.TransportError as exc:  # refused, reset, dropped without an answer
                reason, problem = "connection", f"{type(exc).__name__}: {exc}"
            else:
                text = data.decode("utf-8", errors="replace")
                if status == 200:
                    choice = first_choice(data)
                    if choice is not None:
                        return self._reply_text(choice)
                    reason, problem = "bad_response", f"no usable choices in reply: {text[:200]!r}"
                elif status == 429 or status >= 500:
                    reason, problem = f"http_{status}", text[:200]
                    retry_after = headers.get("Retry-After")
                elif status in REJECTED_FIELD_STATUSES and with_template_kwargs and TEMPLATE_KWARGS_FIELD in text:
                    self._stop_sending_template_kwargs(text)
                    continue  # a resend without the field, not a retry: no wait, no attempt used
                else:
                    raise LLMError(f"http_{status}", f"{self.url}: {text[:200]}")
            if attempt >= self.params.max_retries:
                raise LLMError(reason, f"{self.url}: gave up after {attempt + 1} attempts: {problem}")
            wait = self._backoff(attempt, retry_after)
            log.warning("retry=%d reason=%s wait_s=%.2f problem=%r", attempt + 1, reason, wait, problem)
            self.sleep(wait)
            attempt += 1

    def _reply_text(self, choice: dict) -> str:
        # Servers with a reasoning parser move the thinking to message.reasoning_content:
        # only `content` is the answer, so that field is ignored.
        content = choice["message"].get("content") or ""
        if choice.get("finish_reason") == "length":
            raise LLMError("truncated", f"reply reached max_tokens={self.params.max_tokens}", raw=content)
        text = strip_think(content)
        if not text:
            raise LLMError("empty_reply", "no answer left after removing <think> blocks", raw=content)
        return text


def first_choice(body: bytes) -> dict | None:
    """choices[0] of a chat completion, or None when the body is not one (a proxy's HTML page,
    an error object sent with 200, a choice without a message)."""
    try:
        data = json.loads(body)
    except ValueError:  # JSONDecodeError, or bytes that are not even UTF-8
        return None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    if not isinstance(message, dict) or not isinstance(message.get("content"), str | None):
        return None
    return choices[0]
