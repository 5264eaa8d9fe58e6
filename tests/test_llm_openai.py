"""The openai backend against a real OpenAI-compatible server on 127.0.0.1 (tests/openai_server.py).

Backoff waits go to a recording fake sleep, so retries cost no wall time; only the timeout
tests wait for real (a 0.2 s client timeout).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from llm.base import LLMError
from llm.openai_backend import OpenAIChat
from tests.openai_server import (
    OpenAIServer,
    cut_off,
    default_reply,
    drop,
    error,
    garbage,
    loopback_params,
    no_choices,
    ok,
    slow,
    trickle,
    truncated,
)

MESSAGES = [
    {"role": "system", "content": "You write quiz items about WWII."},
    {"role": "user", "content": "Who commanded the German 6th Army at Stalingrad?"},
]
EXPECTED = default_reply(MESSAGES)


@pytest.fixture
def server():
    with OpenAIServer() as running:
        yield running


@pytest.fixture
def make_chat(server):
    """OpenAIChat factories bound to the test server; each client records its backoff waits."""
    clients: list[OpenAIChat] = []

    def make(concurrency: int = 8, **overrides) -> OpenAIChat:
        params = loopback_params(
            server.base_url, model="Qwen/Qwen3-4B", max_tokens=512, backoff_seconds=0.5, max_backoff_seconds=4.0
        )
        waits: list[float] = []
        chat = OpenAIChat(dataclasses.replace(params, **overrides), concurrency=concurrency, sleep=waits.append)
        chat.waits = waits
        clients.append(chat)
        return chat

    yield make
    for chat in clients:
        chat.close()


# --- success and request shape ----------------------------------------------------------


def test_reply_and_request_shape(server, make_chat, monkeypatch):
    monkeypatch.setenv("WW2LM_TEST_OPENAI_KEY", "sk-local-123")
    chat = make_chat(api_key_env="WW2LM_TEST_OPENAI_KEY")
    assert chat.chat(MESSAGES) == EXPECTED
    (request,) = server.chat_requests
    assert request.headers["authorization"] == "Bearer sk-local-123"
    assert request.body == {
        "model": "Qwen/Qwen3-4B",
        "messages": MESSAGES,
        "temperature": 0.7,
        "top_p": 0.8,
        "max_tokens": 512,
        "chat_template_kwargs": {"enable_thinking": False},
    }
    assert chat.waits == []


@pytest.mark.parametrize("key_env", ["", "WW2LM_TEST_UNSET_KEY"])
def test_no_key_means_no_authorization_header(server, make_chat, monkeypatch, key_env):
    monkeypatch.delenv("WW2LM_TEST_UNSET_KEY", raising=False)
    make_chat(api_key_env=key_env).chat(MESSAGES)
    assert "authorization" not in server.chat_requests[0].headers


def test_thinking_enabled_sends_no_template_kwargs(server, make_chat):
    make_chat(enable_thinking=True).chat(MESSAGES)
    assert "chat_template_kwargs" not in server.chat_requests[0].body


def test_name_and_fingerprint_leave_out_url_and_key(make_chat):
    chat = make_chat()
    assert chat.name == "openai:Qwen/Qwen3-4B"
    assert chat.fingerprint() == {
        "model": "Qwen/Qwen3-4B",
        "temperature": 0.7,
        "top_p": 0.8,
        "max_tokens": 512,
        "enable_thinking": False,
    }
    elsewhere = make_chat(base_url="http://127.0.0.1:1/v1", api_key_env="OTHER_KEY")
    assert elsewhere.fingerprint() == chat.fingerprint()
    assert make_chat(temperature=0.0).fingerprint() != chat.fingerprint()


def test_a_base_url_without_scheme_is_rejected_up_front(make_chat):
    with pytest.raises(ValueError, match="base_url"):
        make_chat(base_url="127.0.0.1:8000/v1")


def test_the_test_server_lists_its_model(server):
    reply = httpx.get(server.base_url + "/models")
    assert reply.json()["data"][0]["id"] == server.model


# --- reply handling ---------------------------------------------------------------------


@pytest.mark.parametrize("reasoning_field", [False, True], ids=["think_in_content", "reasoning_content"])
def test_qwen3_thinking_is_stripped(server, make_chat, reasoning_field):
    server.think, server.reasoning_field = True, reasoning_field
    assert make_chat(enable_thinking=True).chat(MESSAGES) == EXPECTED


def test_thinking_off_is_honoured_by_a_qwen3_like_server(server, make_chat):
    server.think = True
    assert make_chat(enable_thinking=False).chat(MESSAGES) == EXPECTED


def test_a_scripted_think_block_is_stripped(server, make_chat):
    server.script(ok("<think>\nStalingrad, 1942.\n</think>\n\nFriedrich Paulus."))
    assert make_chat().chat(MESSAGES) == "Friedrich Paulus."


def test_truncated_reply_keeps_the_raw_text(server, make_chat):
    server.script(truncated())
    with pytest.raises(LLMError) as info:
        make_chat().chat(MESSAGES)
    assert info.value.reason == "truncated"
    assert info.value.raw == EXPECTED[: len(EXPECTED) // 2]
    assert len(server.chat_requests) == 1  # not retried: the same budget would cut it again


@pytest.mark.parametrize("content", [None, "", "<think>still thinking about 1942", "<think>done</think>\n  "])
def test_empty_reply(server, make_chat, content):
    server.script(ok(content))
    with pytest.raises(LLMError) as info:
        make_chat().chat(MESSAGES)
    assert info.value.reason == "empty_reply"
    assert info.value.raw == (content or "")


# --- retries ----------------------------------------------------------------------------


def test_500s_are_retried_with_exponential_backoff(server, make_chat, caplog):
    server.script(error(500), error(502), error(503))
    chat = make_chat()
    with caplog.at_level(logging.WARNING, logger="generate.openai"):
        assert chat.chat(MESSAGES) == EXPECTED
    assert chat.waits == [0.5, 1.0, 2.0]
    assert len(server.chat_requests) == 4
    assert "retry=1 reason=http_500 wait_s=0.50" in caplog.text


def test_backoff_is_capped(server, make_chat):
    server.script(*[error(500)] * 5)
    chat = make_chat(max_retries=5, max_backoff_seconds=3.0)
    assert chat.chat(MESSAGES) == EXPECTED
    assert chat.waits == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_429_honours_retry_after_capped(server, make_chat):
    server.script(error(429, retry_after="3"), error(429, retry_after="120"), error(429, retry_after="soon"))
    chat = make_chat()
    assert chat.chat(MESSAGES) == EXPECTED
    # Retry-After in seconds wins, capped at max_backoff; an unparsable one falls back to 0.5 * 2**2.
    assert chat.waits == [3.0, 4.0, 2.0]


def test_a_slow_reply_times_out_and_the_retry_succeeds(server, make_chat):
    server.script(slow(2.0))
    chat = make_chat(timeout_seconds=0.2)
    assert chat.chat(MESSAGES) == EXPECTED
    assert chat.waits == [0.5]
    assert len(server.chat_requests) == 2


def test_a_trickling_reply_hits_the_request_deadline(server, make_chat):
    # Every read gets a byte within 0.5 s, far inside the per-read limit; the whole reply
    # (hundreds of bytes) would take minutes.
    server.script(trickle(0.5))
    chat = make_chat(timeout_seconds=1.0, max_retries=0)
    started = time.monotonic()
    with pytest.raises(LLMError) as info:
        chat.chat(MESSAGES)
    assert info.value.reason == "timeout" and info.value.transient
    assert "timeout_seconds=1.0" in str(info.value)
    assert time.monotonic() - started < 3.0


def test_transient_and_client_errors_are_told_apart():
    from llm.base import client_error_status, is_transient

    assert [is_transient(r) for r in ("connection", "timeout", "http_429", "http_503")] == [True] * 4
    assert [is_transient(r) for r in ("http_400", "http_401", "bad_response", "parse_missing_question")] == [False] * 4
    assert [client_error_status(r) for r in ("http_400", "http_401", "http_403", "http_429", "http_500")] == [
        400,
        401,
        403,
        None,
        None,
    ]


def test_a_dropped_connection_is_retried(server, make_chat):
    server.script(drop(), drop())
    chat = make_chat()
    assert chat.chat(MESSAGES) == EXPECTED
    assert len(chat.waits) == 2


def test_a_reply_cut_short_is_retried(server, make_chat):
    server.script(cut_off())  # Content-Length promises more than arrives before the hang-up
    chat = make_chat()
    assert chat.chat(MESSAGES) == EXPECTED
    assert len(chat.waits) == 1


def test_an_idle_connection_the_server_closed_is_reopened_not_failed(server, make_chat):
    server.close_idle = True  # as if its keep-alive timeout fired between our requests
    chat = make_chat(concurrency=1)
    for _ in range(3):
        assert chat.chat(MESSAGES) == EXPECTED
        time.sleep(0.05)  # the server's FIN arrives while the connection is idle
    assert chat.waits == []  # no request was sent down the dead connection and retried
    assert len({r.client_port for r in server.chat_requests}) == 3


@pytest.mark.parametrize("bad", [garbage, no_choices], ids=["not_json", "no_choices"])
def test_an_unusable_200_is_retried(server, make_chat, bad):
    server.script(bad())
    chat = make_chat()
    assert chat.chat(MESSAGES) == EXPECTED
    assert len(chat.waits) == 1


@pytest.mark.parametrize(
    ("step", "reason"),
    [
        (lambda: error(503), "http_503"),
        (lambda: error(429), "http_429"),
        (lambda: slow(2.0), "timeout"),
        (drop, "connection"),
        (cut_off, "connection"),
        (garbage, "bad_response"),
        (no_choices, "bad_response"),
    ],
    ids=["503", "429", "slow", "drop", "cut_off", "garbage", "no_choices"],
)
def test_giving_up_names_the_last_problem(server, make_chat, step, reason):
    server.script(*[step() for _ in range(3)])
    chat = make_chat(max_retries=2, timeout_seconds=0.2)
    with pytest.raises(LLMError) as info:
        chat.chat(MESSAGES)
    assert info.value.reason == reason
    assert "gave up after 3 attempts" in str(info.value)
    assert len(server.chat_requests) == 3
    assert chat.waits == [0.5, 1.0]


def test_a_refused_connection_gives_up_as_connection(make_chat):
    server = OpenAIServer().start()
    base_url = server.base_url
    server.stop()  # nothing listens on that port any more
    chat = make_chat(base_url=base_url, max_retries=1)
    with pytest.raises(LLMError) as info:
        chat.chat(MESSAGES)
    assert info.value.reason == "connection"


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_other_4xx_fail_at_once(server, make_chat, status):
    server.script(error(status, message="model 'x' does not exist"))
    chat = make_chat()
    with pytest.raises(LLMError) as info:
        chat.chat(MESSAGES)
    assert info.value.reason == f"http_{status}"
    assert len(server.chat_requests) == 1
    assert chat.waits == []


def test_a_wrong_api_key_is_http_401(server, make_chat, monkeypatch):
    server.api_key = "sk-right"
    monkeypatch.setenv("WW2LM_TEST_OPENAI_KEY", "sk-wrong")
    with pytest.raises(LLMError) as info:
        make_chat(api_key_env="WW2LM_TEST_OPENAI_KEY").chat(MESSAGES)
    assert info.value.reason == "http_401"


# --- servers that reject chat_template_kwargs ---------------------------------------------


def test_a_400_on_chat_template_kwargs_resends_without_it_once(server, make_chat, caplog):
    server.reject_chat_template_kwargs = True
    server.think = True  # it cannot be told not to think, so the reply must be stripped
    chat = make_chat(enable_thinking=False)
    with caplog.at_level(logging.WARNING, logger="generate.openai"):
        assert chat.chat(MESSAGES) == EXPECTED
        assert chat.chat(MESSAGES) == EXPECTED
    sent = ["chat_template_kwargs" in r.body for r in server.chat_requests]
    assert sent == [True, False, False]  # rejected once, then never sent again
    assert chat.waits == []  # a resend is not a retry
    assert caplog.text.count("rejects=chat_template_kwargs") == 1


def test_a_400_about_something_else_is_not_resent(server, make_chat):
    server.script(error(400, message="messages: field required"))
    with pytest.raises(LLMError) as info:
        make_chat(enable_thinking=False).chat(MESSAGES)
    assert info.value.reason == "http_400"
    assert len(server.chat_requests) == 1


# --- concurrency ------------------------------------------------------------------------


def test_many_threads_share_one_client(server, make_chat, caplog):
    server.latency = 0.02
    server.script(error(500), drop(), error(503), garbage())  # some faults land mid-flight
    chat = make_chat(concurrency=8)
    prompts = [[{"role": "user", "content": f"Question number {i} about 1944?"}] for i in range(120)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        replies = list(pool.map(chat.chat, prompts))
    assert replies == [default_reply(p) for p in prompts]
    assert len(server.chat_requests) == 124
    assert len(chat.waits) == 4
    # `concurrency` connections, so 32 threads never get more than 8 requests in.
    assert 2 <= server.peak_in_flight <= 8


@pytest.mark.parametrize("concurrency", [1, 4, 16])
def test_connections_follow_concurrency_and_are_kept_alive(server, make_chat, concurrency):
    server.latency = 0.05
    chat = make_chat(concurrency=concurrency)
    prompts = [[{"role": "user", "content": f"Question number {i} about 1944?"}] for i in range(4 * concurrency)]
    with ThreadPoolExecutor(max_workers=2 * concurrency) as pool:
        list(pool.map(chat.chat, prompts))
    # 4 * concurrency requests over at most `concurrency` connections, so each was reused (kept
    # alive, not reopened); the threads above the limit waited their turn rather than connect.
    assert len(server.chat_requests) == 4 * concurrency
    assert len({r.client_port for r in server.chat_requests}) <= concurrency
    assert min(2, concurrency) <= server.peak_in_flight <= concurrency
