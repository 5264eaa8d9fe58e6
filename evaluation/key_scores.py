"""The key scores of an evaluation: one number per (split, measure) that experiments are
compared on, each beside its split's chance baseline.

The same list feeds the per-experiment bar chart the evaluate stage writes for
`dvc plots` (metrics/eval_scores.json) and the table of `python -m tools.compare`, so the
chart and the table always show the same scores under the same names.
"""

from __future__ import annotations

# (label, split of metrics/eval.json, key in that split). ll = multiple-choice accuracy by
# option log-likelihood, norm = its length-normalised form (lm-evaluation-harness acc_norm),
# gen = the generated answer; xunseen = the exam on held-out articles.
KEY_SCORES: tuple[tuple[str, str, str], ...] = (
    ("recall", "recall", "pass_rate"),
    ("verbatim", "verbatim", "pass_rate"),
    ("unseen", "unseen", "pass_rate"),
    ("exam ll", "exam", "ll_acc"),
    ("exam norm", "exam", "ll_acc_norm"),
    ("exam gen", "exam", "generated_acc"),
    ("xunseen ll", "exam_unseen", "ll_acc"),
    ("xunseen gen", "exam_unseen", "generated_acc"),
)


def key_scores(metrics: dict) -> list[dict]:
    """Rows `{"score", "value", "chance", "rank"}` of the key scores an eval.json holds;
    `rank` is the place in KEY_SCORES (a chart sorts its panels by it). A split that was
    not measured (no exam shipped) has no row."""
    rows = []
    splits = metrics.get("splits") or {}
    for rank, (label, split, key) in enumerate(KEY_SCORES):
        value = (splits.get(split) or {}).get(key)
        if value is not None:
            chance = ((splits.get(split) or {}).get("baselines") or {}).get("chance")
            rows.append({"score": label, "value": value, "chance": chance, "rank": rank})
    return rows
