"""Custom generate backends for tests, plugged in as `generate.backend: tests.generate_fakes:<factory>`
(the same extension point a user has for their own backend)."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

from llm.base import ChatBackend


class EchoBackend(ChatBackend):
    """A chat model that answers every prompt with a well-formed reply about the window.

    Replies depend only on the prompt, so runs are reproducible. Class-level counters let a
    test count calls across the backend instances main() builds.
    """

    name = "fake:echo"
    calls = 0
    lock = threading.Lock()

    def __init__(self, delay: float = 0.0, kill_marker: str | None = None):
        self.delay = delay
        self.kill_marker = kill_marker

    def fingerprint(self) -> dict:
        return {"backend": "fake:echo"}

    def chat(self, messages: list[dict]) -> str:
        with EchoBackend.lock:
            EchoBackend.calls += 1
        prompt = messages[-1]["content"]
        if self.kill_marker and not Path(self.kill_marker).exists():
            Path(self.kill_marker).write_text(str(os.getpid()))
            os._exit(1)  # the worker process dies mid-task, like a reclaimed spot instance
        if self.delay:
            time.sleep(self.delay)
        if "DECLINE" in prompt:  # a type the text has no material for
            return "NONE"
        if "BAD-TYPE" in prompt:  # a prompt type whose replies never parse
            return "Here is a fine quiz item for you, enjoy."
        if "QUESTION ONLY" in prompt:
            return "Question: " + _topic(prompt) + "?"
        if "ANSWER THIS" in prompt:
            return "Answer: It is described in " + _topic(prompt) + "."
        kind = re.search(r"TYPE: (\S+)", prompt)
        suffix = f" ({kind.group(1)})" if kind else ""
        return f"Question: What is notable about {_topic(prompt)}{suffix}?\nAnswer: {_window_text(prompt)[:80]}"


def _topic(prompt: str) -> str:
    match = re.search(r"ARTICLE: (.+)", prompt)
    return match.group(1).strip() if match else "it"


def _window_text(prompt: str) -> str:
    match = re.search(r"TEXT: (.+)", prompt)
    return match.group(1).strip() if match else "nothing"


def echo(params, windows):
    return EchoBackend()


def slow_echo(params, windows):
    return EchoBackend(delay=float(os.environ.get("FAKE_DELAY", "0.05")))


def kill_once(params, windows):
    return EchoBackend(kill_marker=os.environ["FAKE_KILL_MARKER"])
