"""Which questions each split asks, and the trivial baselines every split is graded against.

Splits (DESIGN.md, "Evaluation"), each a records index of the encode stage joined by id with
the records file:
  recall    data/tokens/recall.records.jsonl: questions held out of training whose facts the
            window's other records teach: the headline number (skipped when absent)
  verbatim  a seeded sample of data/tokens/train.records.jsonl, as many as recall asks:
            memorisation; the gap to recall is what the model does not generalise
  unseen    data/tokens/val.records.jsonl: held-out articles, facts never taught: the control
Baselines answer without a model and are graded by the same judge: `always_true` ("True." on
true/false items), `first_option` (the first option of a choice item) and `echo` (the question
itself). `chance` is the mean of 1 / number of options over choice items.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from evaluation.questions import GRADED_KINDS, sample_questions, to_question

BASELINES = ("always_true", "first_option", "echo")


def index_questions(by_id: dict[str, dict], index: Sequence[dict], name: str) -> list[dict]:
    """Graded questions of one split index, in index order; raises ValueError naming the first
    indexed id missing from the records. Raw-text rows (encode.mix.raw) ask nothing and are
    not in the records file; a record the mix repeated (weight 2.0) asks once."""
    index = list({row["id"]: row for row in index if row.get("kind") != "raw"}.values())
    missing = [row["id"] for row in index if row["id"] not in by_id]
    if missing:
        raise ValueError(
            f"{len(missing)} {name} record(s) not in the records file (first: {missing[0]}); "
            "pass the records the encode stage read"
        )
    return [to_question(by_id[row["id"]]) for row in index if by_id[row["id"]].get("kind") in GRADED_KINDS]


def wanted_records(records: Iterable[dict], indexes: Iterable[Sequence[dict]]) -> dict[str, dict]:
    """id -> record for every id of the indexes (the records file is read once)."""
    wanted = {row["id"] for index in indexes for row in index}
    return {r["id"]: r for r in records if isinstance(r, dict) and r.get("id") in wanted}


def choose_splits(
    by_id: dict[str, dict],
    indexes: dict[str, Sequence[dict] | None],
    train_articles: set[str],
    max_questions: int,
    seed: int,
) -> dict[str, list[dict]]:
    """{split: asked questions} for recall (when its index exists), verbatim and unseen.
    `max_questions` caps each split (stratified by type); verbatim asks as many as recall."""
    unseen = index_questions(by_id, indexes["val"] or [], "val")
    leaked = sorted({q["article"] for q in unseen} & train_articles)
    if leaked:
        raise ValueError(f"val questions from training articles: {', '.join(leaked)}")
    splits = {}
    if indexes.get("recall") is not None:
        splits["recall"] = sample_questions(index_questions(by_id, indexes["recall"], "recall"), max_questions, seed)
    size = len(splits["recall"]) if "recall" in splits else max_questions
    train = index_questions(by_id, indexes.get("train") or [], "train")
    splits["verbatim"] = sample_questions(train, size or len(unseen), seed) if train else []
    splits["unseen"] = sample_questions(unseen, max_questions, seed)
    return splits


def is_true_false(question: dict) -> bool:
    return question["question"].lower().startswith("true or false")


def baseline_answer(question: dict, baseline: str) -> str | None:
    """The baseline's answer, or None when it does not apply to the question."""
    if baseline == "always_true":
        return "True." if is_true_false(question) else None
    if baseline == "first_option":
        return question["options"][0] if question.get("options") else None
    return question["question"]


def chance(questions: Sequence[dict]) -> float | None:
    """Expected accuracy of a uniform guess over the choice items' options."""
    odds = [1 / len(q["options"]) for q in questions if q.get("options")]
    return round(sum(odds) / len(odds), 6) if odds else None
