"""An OpenAI-compatible chat server on 127.0.0.1 for tests and benchmarks, with scripted faults.

Serves POST /v1/chat/completions and GET /v1/models in the OpenAI response shape
(https://platform.openai.com/docs/api-reference/chat/object) over HTTP/1.1 keep-alive, one
thread per connection, like vLLM behind its API server as far as a client can tell.

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

One-shot behaviour: `server.script(step, ...)` queues steps; each chat request takes the next
(in arrival order) until the queue is empty, then gets the default. Steps: ok(), error(),
slow(), trickle(), drop(), garbage(), no_choices(), truncated().

Every request is recorded (method, path, lower-cased headers, parsed JSON body, the client's
port, which names its connection) in `server.requests`; `server.peak_in_flight` is the most chat requests handled at once.

Example:
    with OpenAIServer(latency=0.1) as server:
        server.script(error(500), drop())
        ...  # point a client at server.base_url
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from llm.params import OpenAIParams

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
TRICKLE_HEADER = "X-Test-Trickle"  # internal: tells the handler to trickle; never sent
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
    requests: list[RecordedRequest] = field(default_factory=list)
    peak_in_flight: int = 0

    def __post_init__(self) -> None:
        self._steps: list[Step] = []
        self._lock = threading.Lock()
        self._in_flight = 0
        self._stopping = threading.Event()  # wakes handlers sleeping through a delay
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> OpenAIServer:
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.app = self
        # A short poll interval: stop() waits for the serve loop to notice, 0.5 s by default.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="openai-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()
        self._httpd = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

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

    def answer_chat(self, body: dict | None, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes | None]:
        """(status, extra headers, body bytes); a None body means drop the connection."""
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
        if delay > 0 and self._stopping.wait(delay):
            return 0, {}, None  # the server is stopping: hang up instead of answering
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
        return 200, ({TRICKLE_HEADER: str(step.trickle)} if step.trickle else {}), data

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


def _error(status: int, message: str, kind: str) -> tuple[int, dict[str, str], bytes]:
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return status, {}, json.dumps(body).encode()


class _HTTPServer(ThreadingHTTPServer):
    app: OpenAIServer
    daemon_threads = True
    # Keep-alive handler threads block until their client hangs up: do not wait for them on
    # close. A deep listen backlog, so 64 clients connecting at once are not refused/retried.
    block_on_close = False
    request_queue_size = 256

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that timed out and hung up is expected here, not worth a traceback


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do; needs Content-Length
    # A buffered wfile (the default is unbuffered): status line, headers and body leave in one
    # send, not one for the headers and one for the body: a syscall less here and a read less
    # in the client (the server's CPU per request: 0.08-0.09 -> 0.065-0.075 ms).
    wbufsize = -1
    # A trickled reply flushes byte by byte; with Nagle on, each small write would wait for the
    # client's delayed ACK (~40 ms on Linux). uvicorn sets it too.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def _headers_dict(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        app = self.server.app
        app._record(RecordedRequest("GET", self.path, self._headers_dict(), None, self.client_address[1]))
        if self.path == MODELS_PATH:
            self._send(200, {}, json.dumps(app.answer_models()).encode())
        else:
            self._send(*_error(404, f"no route {self.path}", "not_found"))

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        app = self.server.app
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        headers = self._headers_dict()
        app._record(RecordedRequest("POST", self.path, headers, body, self.client_address[1]))
        if self.path != CHAT_PATH:
            self._send(*_error(404, f"no route {self.path}", "not_found"))
            return
        app._enter()
        try:
            status, extra, data = app.answer_chat(body, headers)
        finally:
            app._leave()
        if data is None:  # a dropped connection: hang up without a status line
            self.close_connection = True
            with contextlib.suppress(OSError):  # the client may already be gone
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(status, extra, data)

    def _send(self, status: int, extra: dict[str, str], data: bytes) -> None:
        trickle = float(extra.pop(TRICKLE_HEADER, 0) or 0)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            if not trickle:
                self.wfile.write(data)
                self.wfile.flush()  # here, so a client that hung up is caught below
            for i in range(len(data) if trickle else 0):
                if self.server.app._stopping.wait(trickle):
                    break  # the server is stopping: hang up mid-body
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (timed out) before the reply

    def log_message(self, format: str, *args: object) -> None:
        pass
