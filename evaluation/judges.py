"""The Judge protocol every judge of the evaluate stage implements, and `make_judge`.

  heuristic  evaluation/judge.py: token recall plus hard checks, offline
  llm        evaluation/judge_llm.py: any LLM backend (llm/factory.py) asked for a verdict
A judge grades one answer per call and may be called from `max_in_flight` threads at once;
an answer it could not grade is an ERROR verdict, never an exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from evaluation.judge import HeuristicJudge, Verdict
from evaluation.judge_llm import LLMJudge
from llm.base import ChatBackend
from llm.factory import backend_from_params
from llm.params import OpenAIParams, TransformersParams


class Judge(Protocol):
    name: str  # "heuristic", or the LLM backend's name: the "judge" of metrics/eval.json
    max_in_flight: int  # answers worth grading at once (threads); 1 = pure CPU

    def grade(
        self,
        question: str,
        reference: str,
        answer: str,
        window_text: str | None = None,
        options: Sequence[str] | None = None,
    ) -> Verdict: ...

    def close(self) -> None: ...


def make_judge(
    kind: str,
    *,
    backend: ChatBackend | None = None,
    backend_params: OpenAIParams | TransformersParams | None = None,
    concurrency: int = 8,
    **heuristic: Any,
) -> Judge:
    """A judge of `kind`: "heuristic" (keywords go to HeuristicJudge) or "llm" on `backend`, or
    on one built by llm/factory.py from `backend_params`, `concurrency` answers at a time."""
    if kind == "heuristic":
        return HeuristicJudge(**heuristic)
    if kind != "llm":
        raise ValueError(f"judge kind must be 'heuristic' or 'llm', got {kind!r}")
    if backend is None:
        if not isinstance(backend_params, OpenAIParams | TransformersParams):
            raise ValueError(
                f"an llm judge needs a backend, OpenAIParams or TransformersParams, got {backend_params!r}"
            )
        backend = backend_from_params(backend_params, concurrency=concurrency)
    return LLMJudge(backend, max_in_flight=concurrency)
