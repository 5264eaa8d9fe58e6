"""The LLM judge: a chat backend shown the source window, question, reference and student
answer writes an explanation and a verdict, parsed robustly; plus `make_judge`, the factory
for both judges. An unparseable verdict is UNPARSED and a failed request ERROR: neither is
ever a pass (evaluation/judge.py summarise counts them as not passed).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from evaluation.judge import HeuristicJudge, Verdict
from llm.base import ChatBackend, LLMError, strip_think
from llm.openai_backend import OpenAIChat, OpenAIParams

JUDGE_PROMPT = """\
You are grading a student's answer to a World War II history question.

Source text the question was written from:
<<<
{window}
>>>

Question: {question}
Reference answer: {reference}
Student answer: {answer}

The answer passes if it states the same key facts as the reference answer: the same people, \
places, dates and numbers, with nothing that contradicts the reference or the source text. \
Wording, length and extra correct detail do not matter. A missing or wrong key fact fails, and \
so does an empty, evasive or hedged answer (one that offers several different answers).

Explain your judgement in one to three sentences. Then end with a final line that is exactly \
"Verdict: PASS" or "Verdict: FAIL"."""

# "Verdict: PASS", "**Verdict:** pass", "VERDICT - FAIL", "Final verdict: pass." — the label, any
# markup, then the rest of the line (which may be empty when the word sits on the next line).
VERDICT_LINE = re.compile(r"^[\W_]*(?:final\s+)?verdict\b[\W_]*(?P<rest>.*)$", re.IGNORECASE | re.MULTILINE)
VERDICT_WORD = re.compile(r"\b(pass(?:ed)?|fail(?:ed)?)\b", re.IGNORECASE)
NEGATION = re.compile(r"\b(?:not|no|isn't|doesn't)\b", re.IGNORECASE)
BARE_VERDICT = re.compile(r"^[\W_]*(pass|fail)[\W_]*$", re.IGNORECASE)


def parse_verdict(reply: str) -> tuple[str, str]:
    """(PASS | FAIL | UNPARSED, explanation) from a grader reply. The LAST verdict line decides:
    models restate the format or change their mind before the end. Both words, neither, or a
    negated pass ("not a pass") is UNPARSED, never a guess."""
    text = strip_think(reply)
    matches = list(VERDICT_LINE.finditer(text))
    if matches:
        last = matches[-1]
        rest = last["rest"].strip()
        if not rest:  # "**Verdict:**" alone: the word is on the next non-empty line
            following = [line for line in text[last.end() :].splitlines() if line.strip()]
            rest = following[0] if following else ""
        explanation = (text[: last.start()] + text[last.end() :]).strip()
    else:  # a last line that is only the word ("**PASS**") is still unambiguous
        lines = text.strip().splitlines()
        rest = lines[-1] if lines and BARE_VERDICT.match(lines[-1]) else ""
        explanation = "\n".join(lines[:-1]).strip() if rest else text.strip()
    words = {w[:4].upper() for w in VERDICT_WORD.findall(rest)}
    if len(words) != 1 or (words == {"PASS"} and NEGATION.search(rest)):
        return "UNPARSED", explanation or text.strip()
    return words.pop(), explanation


class LLMJudge:
    """Asks a chat backend for an explanation and a verdict (JUDGE_PROMPT)."""

    def __init__(self, backend: ChatBackend, prompt: str = JUDGE_PROMPT):
        self.backend = backend
        self.prompt = prompt

    def grade(
        self,
        question: str,
        reference: str,
        answer: str,
        window_text: str | None = None,
        options: Sequence[str] | None = None,
    ) -> Verdict:
        """`options` is accepted for a common signature; the question already lists them."""
        content = self.prompt.format(
            window=(window_text or "").strip() or "(not available)",
            question=question.strip(),
            reference=reference.strip(),
            answer=answer.strip() or "(empty)",
        )
        details: dict[str, Any] = {"backend": self.backend.name}
        try:
            reply = self.backend.chat([{"role": "user", "content": content}])
        except LLMError as exc:  # never a pass: the answer was not graded
            return Verdict("ERROR", str(exc), None, details | {"reason": exc.reason})
        verdict, explanation = parse_verdict(reply)
        return Verdict(verdict, explanation, None, details | {"raw": reply})


# --- factory ---------------------------------------------------------------------------


def make_judge(
    kind: str,
    *,
    backend: ChatBackend | None = None,
    backend_params: OpenAIParams | Any = None,
    concurrency: int = 8,
    **heuristic: Any,
) -> HeuristicJudge | LLMJudge:
    """A judge of `kind`: "heuristic" (keywords go to HeuristicJudge) or "llm" on `backend`, or
    on one built from `backend_params` (OpenAIParams or TransformersParams)."""
    if kind == "heuristic":
        return HeuristicJudge(**heuristic)
    if kind != "llm":
        raise ValueError(f"judge kind must be 'heuristic' or 'llm', got {kind!r}")
    if backend is not None:
        return LLMJudge(backend)
    if isinstance(backend_params, OpenAIParams):
        return LLMJudge(OpenAIChat(backend_params, concurrency=concurrency))
    if backend_params is not None:
        from llm.transformers_backend import TransformersChat, TransformersParams  # torch: only when needed

        if isinstance(backend_params, TransformersParams):
            return LLMJudge(TransformersChat(backend_params))
    raise ValueError(f"an llm judge needs a backend, OpenAIParams or TransformersParams, got {backend_params!r}")
