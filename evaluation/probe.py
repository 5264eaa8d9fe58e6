"""Where the student fails: failure rates per article, window and prompt type, the worst
examples, and the generation priorities that follow from them.

tools/probe.py asks the student held-out questions and grades the answers; these pure
functions turn (question, answer, verdict) triples into metrics/weak_spots.json and into the
priorities file the generate stage reads through `generate.priorities`
(synth/priorities.py), so the next generation round starts with what the student gets wrong.
Only a PASS counts as a pass: FAIL, an unparseable LLM verdict and a judge error are failures
here, since each means the answer did not show the fact.

A priority is 1 + `boost` x the failure rate (1 for a group that never failed, 1 + boost
for one that always did); windows and types the probe never asked keep weight 1. Generate
runs its items by descending window x type weight. Weights only reorder generation: they
never pause or drop anything.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from evaluation.judge import Verdict

GROUPS = ("article", "window", "type")
DEFAULT_BOOST = 3.0


def failure_rates(questions: Sequence[dict], verdicts: Sequence[Verdict], key: str) -> list[dict]:
    """[{name, asked, failed, fail_rate}] per question[key], worst first (then most failures, then
    by name): a list, since JSON writers may sort an object's keys. Questions without that key (a
    record with no window) are left out of that grouping."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for question, verdict in zip(questions, verdicts, strict=True):
        if question.get(key) is None:
            continue
        group = counts[str(question[key])]
        group[0] += 1
        group[1] += verdict.verdict != "PASS"
    rows = [{"name": name, "asked": asked, "failed": failed, "fail_rate": round(failed / asked, 4)}
            for name, (asked, failed) in counts.items()]  # fmt: skip
    return sorted(rows, key=lambda row: (-row["fail_rate"], -row["failed"], row["name"]))


def worst_examples(
    questions: Sequence[dict], answers: Sequence[dict], verdicts: Sequence[Verdict], by_article: list, limit: int
) -> list[dict]:
    """Up to `limit` failed questions, from the worst articles first, each with its answer."""
    rank = {row["name"]: i for i, row in enumerate(by_article)}  # every question has an article
    failed = [(q, a, v) for q, a, v in zip(questions, answers, verdicts, strict=True) if v.verdict != "PASS"]
    failed.sort(key=lambda t: (rank[str(t[0]["article"])], t[0]["type"], t[0]["id"]))
    return [
        {
            "id": q["id"],
            "article": q["article"],
            "window": q["window"],
            "type": q["type"],
            "question": q["question"],
            "reference": q["reference"],
            "answer": a["text"],
            "verdict": v.verdict,
            "explanation": v.explanation,
        }
        for q, a, v in failed[:limit]
    ]


def weak_spots(
    questions: Sequence[dict], answers: Sequence[dict], verdicts: Sequence[Verdict], worst: int = 10
) -> dict:
    """The weak-spots report: overall, per article / window / type, the worst examples."""
    if not questions:
        raise ValueError("no questions were asked: nothing to report")
    groups = {f"by_{key}": failure_rates(questions, verdicts, key) for key in GROUPS}
    failed = sum(v.verdict != "PASS" for v in verdicts)
    return {
        "asked": len(questions),
        "failed": failed,
        "fail_rate": round(failed / len(questions), 4),
        **groups,
        "worst_examples": worst_examples(questions, answers, verdicts, groups["by_article"], worst),
    }


def priorities(report: dict, boost: float = DEFAULT_BOOST) -> dict:
    """{"boost", "windows": {id: weight}, "types": {name: weight}} for generate.priorities."""
    if boost < 0:
        raise ValueError(f"boost must be >= 0, got {boost}")

    def weights(rows: list[dict]) -> dict[str, float]:
        return {row["name"]: round(1.0 + boost * row["fail_rate"], 4) for row in rows}

    return {"boost": boost, "windows": weights(report["by_window"]), "types": weights(report["by_type"])}
