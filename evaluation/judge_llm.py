"""The LLM judge: a chat backend shown the source window, question, reference and student
answer writes an explanation and a verdict, parsed robustly (evaluation/judges.py builds
it). An unparseable verdict is UNPARSED and a failed request ERROR: neither is
ever a pass (evaluation/judge.py summarise counts them as not passed).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from evaluation.judge import Verdict
from llm.base import ChatBackend, LLMError, strip_think

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
    """A Judge (evaluation/judges.py) that asks a chat backend for an explanation and a
    verdict (JUDGE_PROMPT); `max_in_flight` answers are graded at once."""

    def __init__(self, backend: ChatBackend, prompt: str = JUDGE_PROMPT, max_in_flight: int = 1):
        self.backend = backend
        self.prompt = prompt
        self.name = backend.name
        self.max_in_flight = max_in_flight

    def close(self) -> None:
        self.backend.close()

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
