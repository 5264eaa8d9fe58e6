"""An OpenAI-compatible chat server on 127.0.0.1 for tests and benchmarks, with scripted faults.

Serves POST /v1/chat/completions and GET /v1/models in the OpenAI response shape
(https://platform.openai.com/docs/api-reference/chat/object) over HTTP/1.1 keep-alive, from
one asyncio event loop in its own thread, as vLLM's uvicorn server does. Not http.server's one
thread per connection: with 64 connections busy, their GIL hand-offs made the server cost
~0.25 ms of CPU per request (the loop: ~0.15 ms), and the benchmark measured the server's queue
as well as the client.

Default reply, derived from the last user message `text` (whitespace collapsed to one line):
    Question: <text>
    Answer: <TEXT UPPER-CASED>
(`default_reply(messages)` computes it, so tests can assert the exact string.)

Server-wide behaviour (constructor keywords, also settable while running):
  latency            seconds before every reply (the benchmark's stand-in for generation time)
  think              wrap replies in <think>…</think> like Qwen3, unless the request sends
                     chat_template_kwargs {"enable_thinking": false}
  reasoning_field    with think: put the reasoning in message.reasoning_content instead
                     (vLLM/SGLang with a reasoning parser)
  reject_chat_template_kwargs  answer 400 to any request carrying that field
  api_key            require "Authorization: Bearer <api_key>" (401 otherwise)
  check_model        answer 400 to a request for any model but `model` (as vLLM does)
  close_idle         hang up each connection just after its reply, unannounced (no
                     "Connection: close"): a keep-alive timeout that fires while it is idle

One-shot behaviour: `server.script(step, ...)` queues steps; each chat request takes the next
(in arrival order) until the queue is empty, then gets the default. Steps: ok(), error(),
slow(), trickle(), drop(), cut_off(), garbage(), no_choices(), truncated().

Every request is recorded (method, path, lower-cased headers, parsed JSON body, the client's
port, which names its connection) in `server.requests`; `server.peak_in_flight` is the most chat requests handled at once.

Example:
    with OpenAIServer(latency=0.1) as server:
        server.script(error(500), drop())
        ...  # point a client at server.base_url
"""

from __future__ import annotations

import asyncio
import http
import json
import re
import threading
import time
from dataclasses import dataclass, field

from llm.params import OpenAIParams

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
TRICKLE_HEADER = "X-Test-Trickle"  # internal: tells the handler to trickle; never sent
CUT_HEADER = "X-Test-Cut"  # internal: tells the handler to stop halfway; never sent
_DEFAULT = object()  # "compute the default reply": distinct from content=None (JSON null)


def loopback_params(base_url: str, **overrides) -> OpenAIParams:
    """OpenAIParams for a client of this server: short timeouts, no key, thinking off; the
    tests and benchmarks override what they exercise."""
    defaults = {
        "base_url": base_url, "model": "loopback-model", "api_key_env": "", "temperature": 0.7, "top_p": 0.8,
        "max_tokens": 256, "timeout_seconds": 2.0, "max_retries": 3, "backoff_seconds": 0.01,
        "max_backoff_seconds": 0.01, "enable_thinking": False,
    }  # fmt: skip
    return OpenAIParams(**(defaults | overrides))


def default_reply(messages: list[dict]) -> str:
    """The reply the server gives when nothing is scripted (see the module docstring)."""
    last_user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    text = " ".join(str(last_user).split())
    return f"Question: {text}\nAnswer: {text.upper()}"


@dataclass(frozen=True)
class Step:
    """One scripted answer to one chat request."""

    status: int = 200
    delay: float | None = None  # seconds before answering; None: the server's latency
    drop: bool = False  # close the connection without answering
    raw_body: bytes | None = None  # sent as is instead of a chat completion
    content: object = _DEFAULT  # reply text, None for JSON null; default: default_reply()
    finish_reason: str = "stop"
    retry_after: str | None = None
    error_message: str = "scripted failure"
    trickle: float | None = None  # send the body one byte every this many seconds
    cut: bool = False  # announce the whole body, send half of it, hang up


def ok(content: str | None | object = _DEFAULT, finish_reason: str = "stop", delay: float | None = None) -> Step:
    return Step(content=content, finish_reason=finish_reason, delay=delay)


def error(status: int, retry_after: str | None = None, message: str = "scripted failure") -> Step:
    return Step(status=status, retry_after=retry_after, error_message=message)


def slow(seconds: float) -> Step:
    """A normal reply after `seconds`: longer than a client's timeout, it times out."""
    return Step(delay=seconds)


def trickle(seconds_per_byte: float) -> Step:
    """A normal reply whose body comes one byte every `seconds_per_byte`: each read is quick,
    the whole reply is not."""
    return Step(trickle=seconds_per_byte)


def drop() -> Step:
    return Step(drop=True)


def cut_off() -> Step:
    """200 whose body stops halfway through its Content-Length, then the connection closes."""
    return Step(cut=True)


def garbage() -> Step:
    """200 with a body that is not JSON (a proxy's error page)."""
    return Step(raw_body=b"<html><body>502 Bad Gateway</body></html>")


def no_choices() -> Step:
    """200 with JSON that is not a chat completion."""
    return Step(raw_body=json.dumps({"object": "chat.completion", "model": "x", "usage": {}}).encode())


def truncated() -> Step:
    """The first half of the default reply with finish_reason "length" (hit max_tokens)."""
    return Step(finish_reason="length")


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # keys lower-cased
    body: dict | None  # parsed JSON, None if absent or not JSON
    client_port: int = 0  # one per connection: how many a client opened, whether it reused them


@dataclass
class OpenAIServer:
    model: str = "loopback-model"
    latency: float = 0.0
    think: bool = False
    reasoning_field: bool = False
    reject_chat_template_kwargs: bool = False
    api_key: str | None = None
    check_model: bool = False
    close_idle: bool = False
    requests: list[RecordedRequest] = field(default_factory=list)
    peak_in_flight: int = 0

    def __post_init__(self) -> None:
        self._steps: list[Step] = []
        self._lock = threading.Lock()
        self._in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[asyncio.Task] = set()  # cancelled on stop: handlers mid-delay hang up
        self._port = 0

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> OpenAIServer:
        self._loop = asyncio.new_event_loop()
        # A deep listen backlog, so 64 clients connecting at once are not refused/retried.
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve_connection, "127.0.0.1", 0, backlog=256)
        )
        self._port = self._server.sockets[0].getsockname()[1]
        self._thread = threading.Thread(target=self._loop.run_forever, name="openai-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._loop = None

    async def _shutdown(self) -> None:
        self._server.close()
        for task in self._connections:
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    # --- scripting and inspection ---------------------------------------------------------

    def script(self, *steps: Step) -> None:
        with self._lock:
            self._steps.extend(steps)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and r.path == CHAT_PATH]

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_step(self) -> Step:
        with self._lock:
            return self._steps.pop(0) if self._steps else Step()

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    # --- answers --------------------------------------------------------------------------

    async def answer_chat(self, body: dict | None, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes | None]:
        """(status, extra headers, body bytes); a None body means drop the connection. A stop()
        during the delay cancels it: the connection is hung up instead of answered."""
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided", "invalid_api_key")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "'messages' is a required property", "invalid_request_error")
        if self.check_model and body.get("model") != self.model:
            return _error(400, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
        if self.reject_chat_template_kwargs and "chat_template_kwargs" in body:
            # The wording of OpenAI's own API for an unknown field.
            return _error(400, "Unrecognized request argument supplied: chat_template_kwargs", "invalid_request_error")
        step = self._next_step()
        delay = self.latency if step.delay is None else step.delay
        if delay > 0:
            await asyncio.sleep(delay)
        if step.drop:
            return 0, {}, None
        if step.status != 200:
            status, headers_out, data = _error(step.status, step.error_message, "scripted")
            if step.retry_after is not None:
                headers_out["Retry-After"] = step.retry_after
            return status, headers_out, data
        if step.raw_body is not None:
            return 200, {}, step.raw_body
        data = json.dumps(self._completion(body, step)).encode()
        extra = {TRICKLE_HEADER: str(step.trickle)} if step.trickle else {}
        return 200, extra | ({CUT_HEADER: "1"} if step.cut else {}), data

    def _completion(self, body: dict, step: Step) -> dict:
        message: dict = {"role": "assistant"}
        if step.content is not _DEFAULT:
            message["content"] = step.content
        else:
            answer = default_reply(body["messages"])
            if step.finish_reason == "length":
                answer = answer[: len(answer) // 2]
            thinking_off = (body.get("chat_template_kwargs") or {}).get("enable_thinking") is False
            if self.think and not thinking_off:
                reasoning = "The user asks about a WWII topic; answer in the required format."
                if self.reasoning_field:
                    message["reasoning_content"] = reasoning
                else:
                    answer = f"<think>\n{reasoning}\n</think>\n\n{answer}"
            message["content"] = answer
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        completion_tokens = len(re.findall(r"\S+", message["content"] or ""))
        return {
            "id": f"chatcmpl-{time.monotonic_ns():x}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": [{"index": 0, "message": message, "finish_reason": step.finish_reason}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def answer_models(self) -> dict:
        return {
            "object": "list",
            "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "loopback"}],
        }

    # --- HTTP/1.1 over asyncio streams ------------------------------------------------------

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Requests on one keep-alive connection until the client hangs up, a reply drops it or
        the server stops."""
        self._connections.add(asyncio.current_task())
        port = writer.get_extra_info("peername")[1]
        try:
            while await self._serve_request(reader, writer, port):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # a client that hung up (or timed out) mid-request, or bytes that are not HTTP
        except asyncio.CancelledError:
            pass  # stop(): hang up; ending normally keeps asyncio from logging the cancelled task
        finally:
            self._connections.discard(asyncio.current_task())
            writer.close()

    async def _serve_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> bool:
        """One request and its reply; whether the connection stays open for the next."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # the client closed the connection between requests
        request_line, *header_lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        method, path, _version = request_line.split(" ", 2)
        headers = {}
        for line in header_lines:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        raw = await reader.readexactly(int(headers.get("content-length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self._record(RecordedRequest(method, path, headers, body if method == "POST" else None, port))
        keep_alive = headers.get("connection", "").lower() != "close"
        if method == "GET" and path == MODELS_PATH:
            reply = 200, {}, json.dumps(self.answer_models()).encode()
        elif method == "POST" and path == CHAT_PATH:
            self._enter()
            try:
                reply = await self.answer_chat(body, headers)
            finally:
                self._leave()
        else:
            reply = _error(404, f"no route {method} {path}", "not_found")
        status, extra, data = reply
        if data is None:  # a dropped connection: hang up without a status line
            return False
        cut = extra.pop(CUT_HEADER, None) is not None
        await _send(writer, status, extra, data[: len(data) // 2] if cut else data, len(data))
        return keep_alive and not cut and not self.close_idle


async def _send(writer: asyncio.StreamWriter, status: int, extra: dict[str, str], data: bytes, length: int) -> None:
    """Status line, headers and body in one write; a trickled reply sends its body a byte at a
    time. `length` is the Content-Length announced: more than `data` for a cut_off() reply.
    asyncio sets TCP_NODELAY, so no small write waits for the client's delayed ACK."""
    trickle = float(extra.pop(TRICKLE_HEADER, 0) or 0)
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:  # a scripted status no RFC names
        phrase = "Unknown"
    lines = [f"HTTP/1.1 {status} {phrase}", "Content-Type: application/json"]
    lines += [f"Content-Length: {length}", *(f"{key}: {value}" for key, value in extra.items())]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if not trickle:
        writer.write(head + data)
    else:
        writer.write(head)
        for i in range(len(data)):
            await writer.drain()
            await asyncio.sleep(trickle)
            writer.write(data[i : i + 1])
    await writer.drain()


def _error(status: int, message: str, kind: str) -> tuple[int, dict[str, str], bytes]:
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return status, {}, json.dumps(body).encode()
