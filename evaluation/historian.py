"""The historian check: open prompts ("Tell me about the Eastern Front.") answered freely.

Not graded PASS/FAIL: measured by length, whether the answer stops at <|im_end|>, and
groundedness: the share of answer sentences whose content words (evaluation/judge.py `tokens`)
are at least `min_grounded` (0.5) found in the article the prompt asks about. A model that
recites its corpus scores high; one that strings WWII words at random scores low, and one that
talks about another article scores lower than one that talks about the right one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from evaluation.judge import tokens
from evaluation.questions import answer_stats

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def article_texts(windows: Iterable[dict], articles: set[str]) -> dict[str, str]:
    """Article title -> the text of its windows, in file order, for the wanted articles."""
    parts: dict[str, list[str]] = {}
    for w in windows:
        if w.get("article") in articles:
            parts.setdefault(w["article"], []).append(w.get("text") or " ".join(w.get("sentences", [])))
    return {a: " ".join(p) for a, p in parts.items()}


def grounded_sentences(answer: str, article_text: str, min_grounded: float = 0.5) -> tuple[int, int]:
    """(grounded sentences, sentences with content words) of the answer."""
    known = set(tokens(article_text))
    grounded = total = 0
    for sentence in SENTENCE_END.split(answer.strip()):
        words = tokens(sentence)
        if not words:
            continue
        total += 1
        grounded += sum(w in known for w in words) / len(words) >= min_grounded
    return grounded, total


def historian_metrics(prompts: Sequence[dict], answers: Sequence[dict], texts: dict[str, str]) -> tuple[dict, list]:
    """(metrics, per-prompt groundedness) for the open prompts; a prompt whose article has no
    text is counted in `missing_articles` and left out of groundedness."""
    grounded = total = 0
    per_prompt, missing = [], []
    for p, a in zip(prompts, answers, strict=True):
        if p["article"] not in texts:
            missing.append(p["article"])
            per_prompt.append(None)
            continue
        g, n = grounded_sentences(a["text"], texts[p["article"]])
        grounded, total = grounded + g, total + n
        per_prompt.append(round(g / n, 6) if n else None)
    metrics = answer_stats(answers) | {
        "grounded_share": round(grounded / total, 6) if total else None,
        "sentences": total,
        "missing_articles": sorted(set(missing)),
    }
    return metrics, per_prompt
