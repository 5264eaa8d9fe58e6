"""The pure half of the evaluate stage: which held-out questions to ask, and what the grades add up to.

Questions are the val split's chat records (data/tokens/val.records.jsonl: articles the model
never trained on, chosen by the encode stage) looked up by id in data/shuffled.jsonl. Only
`qa` and `contrastive` records are graded: their reference is a short answer to one question.
`qpt` records are left out, because their "reference" is a whole 8-sentence window answering
"Tell me about X": no PASS/FAIL judge can say whether an answer covers the right 8 sentences,
and a recall judge would fail every good summary. Open questions are measured by the historian
check instead (answer length and whether the model stops), on the fixed `open_prompts` list.

Sampling (`max_questions`) is stratified by prompt type: the type with the fewest questions so
far draws its next one from a seeded order, so a 150-question run holds every type about equally and
per-type pass rates are comparable between runs. A contrastive record and its mirror (the
contrast-swap copy with the options swapped, `meta.mirror_of`) are drawn together, so the
positional-bias check compares the same facts with the correct option first and second.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Sequence

from evaluation.judge import Verdict, summarise

GRADED_KINDS = ("qa", "contrastive")


def to_question(record: dict) -> dict:
    """The parts of a chat record the stage needs: the prompt turns, the question (last user
    turn) and the reference (last assistant turn), plus the contrastive option data."""
    messages = record["messages"]
    meta = record.get("meta") or {}
    return {
        "id": record["id"],
        "kind": record["kind"],
        "type": record.get("type", "unknown"),
        "article": record["article"],
        "window": record.get("window"),
        "prompt": messages[:-1],
        "question": messages[-2]["content"],
        "reference": messages[-1]["content"],
        "options": list(meta["options"]) if meta.get("options") else None,
        "correct": meta.get("correct"),
        "group": meta.get("mirror_of") or record["id"],
    }


def val_questions(records: Iterable[dict], val_index: Sequence[dict], train_articles: set[str]) -> list[dict]:
    """Graded questions of the val split, in val.records.jsonl order. Raises ValueError when an
    indexed record is missing from `records` (not the file that was tokenized) or a question
    comes from a training article (evaluation must never see one)."""
    wanted = {row["id"] for row in val_index}
    by_id = {r["id"]: r for r in records if isinstance(r, dict) and r.get("id") in wanted}
    missing = [row["id"] for row in val_index if row["id"] not in by_id]
    if missing:
        raise ValueError(
            f"{len(missing)} val record(s) not in the records file (first: {missing[0]}); "
            "pass the records the encode stage read"
        )
    questions = [to_question(by_id[row["id"]]) for row in val_index if by_id[row["id"]].get("kind") in GRADED_KINDS]
    leaked = sorted({q["article"] for q in questions} & train_articles)
    if leaked:
        raise ValueError(f"val questions from training articles: {', '.join(leaked)}")
    return questions


def sample_questions(questions: list[dict], max_questions: int, seed: int) -> list[dict]:
    """At most `max_questions` (0 = all), stratified by type, mirror pairs kept together;
    returned in input order so the output does not depend on the draw order."""
    if max_questions <= 0 or len(questions) <= max_questions:
        return list(questions)
    units: dict[str, dict[str, list[int]]] = defaultdict(dict)
    for index, q in enumerate(questions):
        units[q["type"]].setdefault(q["group"], []).append(index)
    queues = {}
    for qtype in sorted(units):
        order = sorted(units[qtype].values())
        random.Random(f"{seed}:{qtype}").shuffle(order)
        queues[qtype] = order
    chosen: list[int] = []
    taken = dict.fromkeys(queues, 0)
    while queues:  # the type with the fewest questions so far draws next: equal counts per type
        qtype = min(queues, key=lambda t: (taken[t], t))
        unit = next((u for u in queues[qtype] if len(chosen) + len(u) <= max_questions), None)
        if unit is None:
            del queues[qtype]
            continue
        queues[qtype].remove(unit)
        chosen.extend(unit)
        taken[qtype] += len(unit)
        if not queues[qtype]:
            del queues[qtype]
    return [questions[i] for i in sorted(chosen)]


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def _counts(verdicts: list[Verdict]) -> dict:
    summary = summarise(verdicts)
    return {k: summary[k] for k in ("total", "pass", "fail", "unparsed", "error")} | {
        "pass_rate": _rate(summary["pass"], summary["total"])
    }


def positional_bias(questions: Sequence[dict], verdicts: Sequence[Verdict]) -> dict:
    """Accuracy on two-option contrastive questions with the correct option first vs second.
    The contrast-swap stage balances the two in training; a large `gap` (first - second) means
    the model still learned "pick the first one" rather than the fact."""
    sides: dict[str, list[bool]] = {"first": [], "second": []}
    for q, v in zip(questions, verdicts, strict=True):
        if q["kind"] == "contrastive" and q["correct"] in (0, 1) and q["options"] and len(q["options"]) == 2:
            sides["first" if q["correct"] == 0 else "second"].append(v.verdict == "PASS")
    first, second = (_rate(sum(s), len(s)) for s in (sides["first"], sides["second"]))
    return {
        "first_total": len(sides["first"]),
        "second_total": len(sides["second"]),
        "first_accuracy": first,
        "second_accuracy": second,
        "gap": round(first - second, 6) if first is not None and second is not None else None,
    }


def answer_stats(rows: Sequence[dict]) -> dict:
    """Mean generated length (tokens, the stop token excluded) and the share that stopped with
    <|im_end|> rather than running into max_new_tokens."""
    n = len(rows)
    return {
        "count": n,
        "mean_answer_tokens": round(sum(r["answer_tokens"] for r in rows) / n, 3) if n else None,
        "stopped_share": _rate(sum(r["stopped"] for r in rows), n),
    }


def summarise_eval(questions: Sequence[dict], answers: Sequence[dict], verdicts: Sequence[Verdict]) -> dict:
    """Overall, per-type and per-kind grades, the positional-bias check and answer statistics."""
    overall = summarise(verdicts)
    by_type: dict[str, list[Verdict]] = defaultdict(list)
    by_kind: dict[str, list[Verdict]] = defaultdict(list)
    for q, v in zip(questions, verdicts, strict=True):
        by_type[q["type"]].append(v)
        by_kind[q["kind"]].append(v)
    return {
        "pass_rate": _rate(overall["pass"], overall["total"]),
        "questions": _counts(list(verdicts)) | {"checks": overall["checks"], "error_reasons": overall["error_reasons"]},
        "per_type": {t: _counts(vs) for t, vs in sorted(by_type.items())},
        "per_kind": {k: _counts(vs) for k, vs in sorted(by_kind.items())},
        "positional_bias": positional_bias(questions, verdicts),
        "answers": answer_stats(answers),
    }


def sample_rows(questions: Sequence[dict], answers: Sequence[dict], verdicts: Sequence[Verdict]) -> list[dict]:
    """One readable row per graded question for metrics/eval_samples.jsonl."""
    rows = []
    for q, a, v in zip(questions, answers, verdicts, strict=True):
        row = {
            "id": q["id"],
            "kind": q["kind"],
            "type": q["type"],
            "article": q["article"],
            "question": q["question"],
            "reference": q["reference"],
            "answer": a["text"],
            "answer_tokens": a["answer_tokens"],
            "stopped": a["stopped"],
            "verdict": v.verdict,
            "explanation": v.explanation,
        }
        if q["kind"] == "contrastive" and q["correct"] in (0, 1):
            row["correct_position"] = "first" if q["correct"] == 0 else "second"
        if "check" in v.details:
            row["check"] = v.details["check"]
        rows.append(row)
    return rows


def open_rows(prompts: Sequence[str], answers: Sequence[dict]) -> list[dict]:
    """Sample rows of the historian check: the same columns, nothing graded."""
    return [
        {
            "kind": "open",
            "type": "historian",
            "question": p,
            "reference": None,
            "answer": a["text"],
            "answer_tokens": a["answer_tokens"],
            "stopped": a["stopped"],
            "verdict": None,
            "explanation": "historian check: length and stop only, not graded",
        }
        for p, a in zip(prompts, answers, strict=True)
    ]
