"""The OpenAI-compatible HTTP API of one ChatEngine, and the chat page.

Routes (https://platform.openai.com/docs/api-reference/chat):
  POST /v1/chat/completions  messages -> a chat.completion, or with "stream": true server-sent
                             events of chat.completion.chunk objects ending with `data: [DONE]`;
                             temperature, top_p, max_tokens (or max_completion_tokens), stop
                             (a string or up to 4), seed, stream_options.include_usage
  GET  /v1/models            the one model served, with its shape and size under "meta"
  GET  /                     the chat page (serving/static/chat.html: no CDN, works offline)

Errors have OpenAI's body, `{"error": {"message", "type", "param", "code"}}`, and status: 400
for a malformed or invalid request (bad JSON, a value out of range, a prompt longer than the
context), 401 for a missing or wrong API key, 404 for an unknown model or route, 429 when the
queue is full. With an API key set, every /v1 route wants `Authorization: Bearer <key>`; the
page itself is static and asks for the key.

Other OpenAI fields (frequency_penalty, logit_bias, tools, ...) are accepted and ignored, as
several OpenAI-compatible servers do; `n` other than 1 is refused.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from model.inference import DEFAULT_MAX_NEW_TOKENS
from serving.engine import ChatEngine, Reply, RequestError, Sampling

CHAT_PAGE = Path(__file__).resolve().parent / "static" / "chat.html"
MAX_STOP_STRINGS = 4  # OpenAI's limit
_DONE = object()  # end of a reply's queue of pieces


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str | list[TextPart]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI fields this server does not implement

    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)  # OpenAI's newer name for max_tokens
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=1)

    def sampling(self) -> Sampling:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stop) > MAX_STOP_STRINGS:
            raise RequestError(f"stop: at most {MAX_STOP_STRINGS} sequences, got {len(stop)}", "invalid_value", "stop")
        return Sampling(
            max_tokens=self.max_completion_tokens or self.max_tokens or DEFAULT_MAX_NEW_TOKENS,
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            seed=self.seed,
            stop=tuple(stop),
        )


def error_response(status: int, message: str, code: str | None, param: str | None = None) -> JSONResponse:
    kind = {401: "authentication_error", 404: "invalid_request_error", 429: "rate_limit_error"}.get(status)
    body = {"message": message, "type": kind or "invalid_request_error", "param": param, "code": code}
    return JSONResponse({"error": body}, status_code=status)


def create_app(engine: ChatEngine, api_key: str | None = None) -> FastAPI:
    """The FastAPI app serving `engine`; `api_key` None = no key needed (bind to loopback then)."""
    app = FastAPI(title="ww2lm", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(RequestError)
    async def request_error(_: Request, exc: RequestError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.code, exc.param)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = [str(p) for p in first.get("loc", ()) if p != "body"]
        if first.get("type") == "json_invalid":
            return error_response(400, f"request body is not valid JSON: {first.get('msg')}", "invalid_json")
        message = f"{'.'.join(where) or 'body'}: {first.get('msg')}"
        return error_response(400, message, "invalid_value", ".".join(where) or None)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", None)

    async def check_key(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not secrets.compare_digest(given.encode(), api_key.encode()):
            raise RequestError(
                "Incorrect or missing API key: send `Authorization: Bearer <key>` with the server's --api-key",
                "invalid_api_key",
                status=401,
            )

    @app.get("/")
    async def chat_page() -> FileResponse:
        return FileResponse(CHAT_PAGE, media_type="text/html; charset=utf-8")

    @app.get("/v1/models", dependencies=[Depends(check_key)])
    async def models() -> dict:
        return {"object": "list", "data": [model_object(engine)]}

    @app.get("/v1/models/{name}", dependencies=[Depends(check_key)])
    async def model(name: str) -> dict:
        check_model(engine, name)
        return model_object(engine)

    @app.post("/v1/chat/completions", dependencies=[Depends(check_key)])
    async def chat_completions(body: ChatRequest):
        check_model(engine, body.model)
        sampling = body.sampling()
        prompt = engine.prompt_ids([{"role": m.role, "content": m.text()} for m in body.messages])
        reply = Reply(prompt_tokens=len(prompt))
        pieces = queued_pieces(engine, prompt, sampling, reply)
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            events = sse_events(pieces, reply, completion_id, created, engine.name, include_usage)
            return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        text = "".join([piece async for piece in pieces])
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": engine.name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": usage(reply),
        }

    return app


def check_model(engine: ChatEngine, name: str) -> None:
    if name != engine.name:
        raise RequestError(
            f"The model `{name}` does not exist; this server serves `{engine.name}` (GET /v1/models)",
            "model_not_found",
            "model",
            status=404,
        )


def model_object(engine: ChatEngine) -> dict:
    return {"id": engine.name, "object": "model", "created": 0, "owned_by": "ww2lm", "meta": engine.describe()}


def usage(reply: Reply) -> dict:
    total = reply.prompt_tokens + reply.completion_tokens
    return {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens, "total_tokens": total}


def queued_pieces(engine: ChatEngine, prompt: list[int], sampling: Sampling, reply: Reply) -> AsyncIterator[str]:
    """Queue the request (RequestError 429 when the queue is full) and return its text pieces as
    the engine's worker generates them when the request's turn comes. Leaving the iteration
    early (a client that disconnects) cancels the generation at its next token."""
    engine.admit()
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    def put(item: object) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the event loop closed under us (server shutdown): nobody is listening
            reply.cancelled.set()

    def work() -> None:
        try:
            if not reply.cancelled.is_set():  # a client that left while queued costs nothing
                for piece in engine.pieces(prompt, sampling, reply):
                    put(piece)
        except Exception as exc:  # handed to the request, which reports it
            put(exc)
        finally:
            engine.release()
            put(_DONE)

    loop.run_in_executor(engine.worker, work)

    async def read() -> AsyncIterator[str]:
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            reply.cancelled.set()  # a no-op once the reply is complete

    return read()


async def sse_events(
    pieces: AsyncIterator[str], reply: Reply, completion_id: str, created: int, name: str, include_usage: bool
) -> AsyncIterator[str]:
    """Server-sent events as OpenAI streams them: a role delta, content deltas, the finish reason,
    optionally a usage chunk, then `[DONE]`."""

    def chunk(delta: dict, finish_reason: str | None = None, **extra) -> str:
        choices = [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": name,
            "choices": choices,
            **extra,
        }
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    async for piece in pieces:
        yield chunk({"content": piece})
    yield chunk({}, reply.finish_reason)
    if include_usage:
        body = json.loads(chunk({})[len("data: ") :])
        yield f"data: {json.dumps({**body, 'choices': [], 'usage': usage(reply)})}\n\n"
    yield "data: [DONE]\n\n"
