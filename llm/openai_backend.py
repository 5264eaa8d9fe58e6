"""The `openai` generator backend: chat completions from any OpenAI-compatible server.

vLLM, SGLang, llama.cpp server, Ollama and LM Studio all serve POST {base_url}/chat/completions
in the OpenAI request/response shape (https://platform.openai.com/docs/api-reference/chat/create).
We speak it with the standard library's http.client rather than the `openai` SDK so that
retries, timeouts and the failure reasons are ours: every request either returns the reply text
or raises an LLMError whose `reason` the generate stage counts in its metrics.

- `concurrency` keep-alive connections, each an http.client.HTTPConnection that a request
  checks out and hands back: at most `concurrency` requests are in flight, and each reuses a
  connection instead of reconnecting. Not httpx: its Client, httpcore and h11 layers (URL
  merging, cookies, auth and redirect hooks, event-by-event parsing) cost ~0.37 ms of GIL-held
  CPU per request against http.client's ~0.12 ms (httpx's transport alone ~0.24, httpcore
  alone ~0.19, httpx.AsyncClient on a loop thread ~0.7), and with 64 requests in flight that
  CPU is serial: the requests of one wave went out over 30-50 ms (bench/generate_throughput.py).
  A shared httpx pool is worse still: httpcore rescans every pooled connection twice per
  request, O(n^2) in the pool size (https://github.com/encode/httpcore/pull/1035). Unlike
  httpx, no proxy is taken from HTTP(S)_PROXY: the server is reached directly.
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

import http.client
import json
import logging
import os
import queue
import select
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

from llm.base import ChatBackend, LLMError, strip_think
from llm.params import OpenAIParams

log = logging.getLogger("generate.openai")

TEMPLATE_KWARGS_FIELD = "chat_template_kwargs"
# FastAPI-based servers answer an unexpected field with 422 rather than 400.
REJECTED_FIELD_STATUSES = {400, 422}
READ_BYTES = 65536  # per read of a reply; the deadline is checked between reads


class RequestDeadline(Exception):
    """A reply still arriving when timeout_seconds ran out (counted as a timeout)."""


class OpenAIChat(ChatBackend):
    """A thread-safe ChatBackend for one model on one OpenAI-compatible server."""

    def __init__(self, params: OpenAIParams, concurrency: int = 8, sleep: Callable[[float], None] = time.sleep):
        if not params.base_url.startswith(("http://", "https://")):
            # Caught here, not as a failure on every attempt after its backoffs.
            raise ValueError(f"generate.openai.base_url: expected http(s)://host:port/v1, got {params.base_url!r}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.params = params
        self.name = f"openai:{params.model}"
        self.sleep = sleep
        self.url = params.base_url.rstrip("/") + "/chat/completions"
        url = urllib.parse.urlsplit(self.url)
        try:
            port = url.port  # raises on a port that is not a number
        except ValueError as exc:
            raise ValueError(f"generate.openai.base_url: {exc}, got {params.base_url!r}") from None
        if not url.hostname:
            raise ValueError(f"generate.openai.base_url: no host in {params.base_url!r}")
        self._target = url.path + (f"?{url.query}" if url.query else "")
        self._headers = {"Accept": "application/json", "Content-Type": "application/json"}
        api_key = os.environ.get(params.api_key_env, "") if params.api_key_env else ""
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        if url.scheme == "https":
            # httpx's TLS context: the same CA bundle (certifi, or SSL_CERT_FILE) as before the
            # switch; one for all, since building one loads the bundle (~0.1 s each).
            tls = httpx.create_ssl_context()
            self._connections = [
                http.client.HTTPSConnection(url.hostname, port, timeout=params.timeout_seconds, context=tls)
                for _ in range(concurrency)
            ]
        else:
            self._connections = [
                http.client.HTTPConnection(url.hostname, port, timeout=params.timeout_seconds)
                for _ in range(concurrency)
            ]
        # LIFO: with fewer requests than connections in flight, the same warm ones serve them.
        self._idle: queue.LifoQueue[http.client.HTTPConnection] = queue.LifoQueue()
        for connection in self._connections:
            self._idle.put(connection)
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
        for connection in self._connections:
            connection.close()

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
    def _connection(self) -> Iterator[http.client.HTTPConnection]:
        """A connection no other thread is using. Waiting here for one to come back is not the
        server's fault, so it has no timeout and never counts as a "timeout" failure."""
        connection = self._idle.get()
        try:
            yield connection
        finally:
            self._idle.put(connection)

    def _post(self, body: dict) -> tuple[int, http.client.HTTPMessage, bytes]:
        """(status, headers, body) of one POST, read whole within timeout_seconds. The socket's
        timeout bounds each connect, send and read, not the request: a server that trickles a
        byte at a time would hold a worker forever, so the body is read against a deadline."""
        # httpx's encoding of json=: compact, UTF-8, and NaN refused rather than sent as invalid JSON.
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        with self._connection() as connection:
            try:
                return self._exchange(connection, content)
            except BaseException:
                connection.close()  # a half-read reply would be taken for the next request's
                raise

    def _exchange(
        self, connection: http.client.HTTPConnection, content: bytes
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        if connection.sock is not None and _closed_by_server(connection.sock):
            connection.close()  # the next request() reconnects
        deadline = time.monotonic() + self.params.timeout_seconds
        connection.request("POST", self._target, body=content, headers=self._headers)
        response = connection.getresponse()
        chunks = []
        # read1: whatever has arrived, so the deadline is checked while a reply trickles in.
        while chunk := response.read1(READ_BYTES):
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise RequestDeadline(f"reply not complete after timeout_seconds={self.params.timeout_seconds}")
        if response.length:  # the server hung up before the Content-Length it announced
            raise http.client.IncompleteRead(b"".join(chunks), response.length)
        response.close()  # done with it: the connection takes the next request
        return response.status, response.headers, b"".join(chunks)

    def chat(self, messages: list[dict[str, str]]) -> str:
        """The assistant's reply, <think> blocks removed; raises LLMError when it fails for good
        (`LLMError.transient` says whether the server, not the request, was at fault)."""
        attempt = 0
        while True:
            with_template_kwargs = self._send_template_kwargs
            retry_after: str | None = None
            try:
                status, headers, data = self._post(self._body(messages, with_template_kwargs))
            except (TimeoutError, RequestDeadline) as exc:  # before OSError: socket.timeout is one
                reason, problem = "timeout", f"{type(exc).__name__}: {exc}"
            except (OSError, http.client.HTTPException) as exc:  # refused, reset, dropped, not HTTP
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


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether an idle keep-alive socket has something to read, which for a connection with no
    request out means the server closed it (its keep-alive timeout) or broke it: reusing it
    would fail the request. httpcore checks its pooled connections the same way."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


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
