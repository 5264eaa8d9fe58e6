"""Mirror binary-choice contrastive records so the correct option comes first exactly half the time.

The stage entry point is stages/contrast_swap.py, whose docstring (and README.md,
"contrast-swap") describes how options are located and swapped. Everything here is pure:
records in, records out; what cannot be mirrored is counted through common.reasons.Drops.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from common.files import JsonlError
from common.reasons import Drops


@dataclass(frozen=True)
class ContrastSwapParams:
    mirror: bool  # false: no mirrors, the generator's order stays (the seed's "correct option first")


# Between the two options: "or", optionally after a possessive ("Paulus's or Rommel's army")
# or a comma, and followed by up to three short words ("X, or was it Y", "X or rather Y"); no
# sentence punctuation, so the two spans stay one choice.
CHOICE_GAP = re.compile(r"(?:['’]s?)?\s*,?\s+or\s+(?:[A-Za-z]+\s+){0,3}", re.IGNORECASE)
Span = tuple[int, int]


class SwapError(ValueError):
    """Why a contrastive record cannot be mirrored; the message is the metrics reason."""


def norm(text: str) -> str:
    """Lowercase, punctuation folded to single spaces: the parser's notion of equal text."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def option_pattern(option: str) -> re.Pattern:
    """Whole-span matcher for an option; a lookahead so overlapping hits are all found."""
    words = norm(option).split()
    if not words:
        raise SwapError("empty_option")
    body = r"[^A-Za-z0-9]+".join(re.escape(w) for w in words)
    if len(words[-1]) == 1:  # an initialism ("U.S", the parser strips the last dot): keep its dot
        body += r"\.?"
    return re.compile(rf"(?<![A-Za-z0-9])(?=({body})(?![A-Za-z0-9]))", re.IGNORECASE)


def option_spans(question: str, option: str) -> list[Span]:
    return [(m.start(1), m.end(1)) for m in option_pattern(option).finditer(question)]


def choice_spans(question: str, options: list[str]) -> tuple[Span, Span, int]:
    """(first span, second span, index in `options` of the option asked first).

    Pairs every span of one option with every later span of the other and keeps the last
    pair joined by CHOICE_GAP: the "X or Y" a question ends with wins over earlier mentions.
    """
    spans = [option_spans(question, o) for o in options]
    if not spans[0] or not spans[1]:
        raise SwapError("options_not_in_question")
    best: tuple[Span, Span, int] | None = None
    for first in (0, 1):
        for a in spans[first]:
            for b in spans[1 - first]:
                joined = b[0] >= a[1] and CHOICE_GAP.fullmatch(question, a[1], b[0])
                if joined and (best is None or (b[1], a[0]) > (best[1][1], best[0][0])):
                    best = (a, b, first)
    if best is None:
        raise SwapError("no_choice_span")
    return best


def swap_spans(question: str, a: Span, b: Span) -> str:
    """The question with the text of span a (earlier) and span b (later) exchanged."""
    return question[: a[0]] + question[b[0] : b[1]] + question[a[1] : b[0]] + question[a[0] : a[1]] + question[b[1] :]


def mirror_id(record_id: str) -> str:
    return hashlib.sha256(f"{record_id}\x1fmirror".encode()).hexdigest()[:16]


def check_contrastive(record: dict) -> tuple[str, list[str], int]:
    """(question, options, correct) of a well-formed binary contrastive record."""
    messages = record.get("messages")
    if (
        not isinstance(messages, list)
        or len(messages) < 2
        or not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages)
        or messages[0].get("role") != "user"
    ):
        raise SwapError("bad_messages")
    meta = record.get("meta")
    options = meta.get("options") if isinstance(meta, dict) else None
    correct = meta.get("correct") if isinstance(meta, dict) else None
    if not isinstance(options, list) or len(options) != 2 or not all(isinstance(o, str) for o in options):
        raise SwapError("not_binary")
    if correct not in (0, 1) or isinstance(correct, bool):
        raise SwapError("bad_correct")
    if norm(options[0]) == norm(options[1]):
        raise SwapError("same_options")
    if not isinstance(record.get("id"), str):
        raise SwapError("no_id")
    return messages[0]["content"], options, correct


def with_question(record: dict, question: str, options: list[str], correct: int) -> dict:
    out = copy.deepcopy(record)
    out["messages"][0]["content"] = question
    out["meta"]["options"] = options
    out["meta"]["correct"] = correct
    return out


def mirror_pair(record: dict, counts: Counter) -> tuple[dict, dict, str]:
    """(original in question order, mirror, dedupe key) for one contrastive record."""
    question, options, correct = check_contrastive(record)
    a, b, first = choice_spans(question, options)
    if first == 1:  # the generator listed the options in a different order than it asked them
        options, correct = options[::-1], 1 - correct
        counts["options_reordered"] += 1
    original = with_question(record, question, options, correct)
    mirror = with_question(record, swap_spans(question, a, b), options[::-1], 1 - correct)
    # Re-read the mirror the way the metric does; a swap that creates a new, later choice
    # (odd repeated options) is skipped rather than breaking the exact 50%.
    if choice_spans(mirror["messages"][0]["content"], mirror["meta"]["options"])[2] != 0:
        raise SwapError("unstable_swap")
    mirror["id"] = mirror_id(record["id"])
    mirror["meta"]["mirror_of"] = record["id"]
    canonical = question if correct == 0 else mirror["messages"][0]["content"]
    answer = record["messages"][1]["content"]
    return original, mirror, f"{norm(canonical)}\x1f{norm(answer)}"


def question_order_correct_first(record: dict) -> bool:
    """Is the correct option the one asked first? Read from the question text itself."""
    question, options, correct = check_contrastive(record)
    _, _, first = choice_spans(question, options)
    return first == correct


def swap_records(lines: Iterable, source: str, stats: Counter, drops: Drops, mirror: bool = True) -> Iterator[dict]:
    """Pass records through, each contrastive one followed by its mirror; a contrastive
    record that cannot be mirrored (or repeats one) is counted in `drops` by reason.
    `mirror=False` keeps the originals alone (contrast_swap.mirror: the seed's positional bias).

    An unreadable line or a non-object stops the stage with file:line (like window): this
    stage only reshuffles what filter already validated, so broken input is a bug upstream.
    """
    seen: set[str] = set()
    for line in lines:
        if line.error:
            raise JsonlError(f"{source}:{line.lineno}: {line.error.replace('_', ' ')}")
        record = line.record
        if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
            raise JsonlError(f"{source}:{line.lineno}: not a record (needs an object with a kind)")
        stats["records_in"] += 1
        if record["kind"] != "contrastive":
            stats["passed_through"] += 1
            yield record
            continue
        stats["contrastive_in"] += 1
        try:
            original, mirrored, key = mirror_pair(record, stats)
        except SwapError as exc:
            drops.add(str(exc), f"line={line.lineno} id={record.get('id')}")
            continue
        if key in seen:
            drops.add("duplicate", f"line={line.lineno} id={record['id']}")
            continue
        seen.add(key)
        yield original
        if mirror:
            stats["mirrors_made"] += 1
            yield mirrored


def order_metrics(records: list[dict], balanced: bool = True) -> dict:
    """Share of contrastive records with the correct option first, by meta and by question;
    `balanced` (mirrors made) requires exactly half."""
    contrastive = [r for r in records if r.get("kind") == "contrastive"]
    if not contrastive:
        return {"contrastive_out": 0, "correct_first_share": None}
    by_meta = sum(r["meta"]["correct"] == 0 for r in contrastive) / len(contrastive)
    by_question = sum(question_order_correct_first(r) for r in contrastive) / len(contrastive)
    if balanced and (by_meta != 0.5 or by_question != 0.5):
        raise AssertionError(f"correct option first in {by_meta:.4f} (meta) / {by_question:.4f} (question), not 0.5")
    return {
        "contrastive_out": len(contrastive),
        "correct_first_share": by_meta,
        "correct_asked_first_share": by_question,
    }
