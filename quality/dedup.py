"""Near-duplicate removal for generated records, and the near-duplicate report across splits.

A generated record (kind qa or contrastive) repeats an earlier one when both come from the
same prompt type and their text (question and answer) is at similarity >= `threshold`
(quality/near_duplicates.py): a question whose only change is a prefix ("In the history
of..." / "According to the history of...") or a distractor ("It was not Truman but Rommel" /
"not Yahara but Rommel") teaches nothing new. The first record in file order is kept, so the
output depends only on the input. Records of different prompt types are compared only for
the report: a `who` and a `where` question about one sentence ask different things on purpose.
Q-PT records pass through: each window is meant to answer many phrasings.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from common.params import ParamsError
from common.reasons import Drops
from quality.near_duplicates import NearDuplicateIndex

DEDUP_KINDS = frozenset({"qa", "contrastive"})


@dataclass(frozen=True)
class DedupParams:
    threshold: float  # similarity at which a record repeats an earlier one of its prompt type


def check_params(params: DedupParams, where: str) -> None:
    if not 0.0 < params.threshold <= 1.0:
        raise ParamsError(f"{where}:dedup.threshold: must be in (0, 1], got {params.threshold!r}")


def check_records(records: list, source: object) -> None:
    """Raise ValueError naming the first record that is not a chat record."""
    for number, record in enumerate(records, start=1):
        messages = record.get("messages") if isinstance(record, dict) else None
        if (
            not isinstance(messages, list)
            or not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages)
            or not any(m.get("role") == "user" for m in messages)
            or not all(isinstance(record.get(k), str) for k in ("id", "kind", "type", "article"))
        ):
            raise ValueError(
                f"{source}: record {number} is not a chat record (needs id, kind, type, article, messages)"
            )


def record_text(record: dict) -> str:
    return "\n".join(m["content"] for m in record["messages"])


def question_text(record: dict) -> str:
    return next(m["content"] for m in record["messages"] if m["role"] == "user")


def dedup_records(
    records: Iterable[dict], threshold: float, drops: Drops, per_type: dict[str, Counter]
) -> Iterator[dict]:
    """The records without the near duplicates of an earlier record of the same prompt type;
    `per_type` counts records in and removed per type."""
    indexes: dict[str, NearDuplicateIndex] = {}
    kept_ids: dict[str, list[str]] = defaultdict(list)
    for record in records:
        if record["kind"] not in DEDUP_KINDS:
            yield record
            continue
        ptype = record["type"]
        per_type[ptype]["in"] += 1
        if ptype not in indexes:
            indexes[ptype] = NearDuplicateIndex(threshold)
        index = indexes[ptype]
        text = record_text(record)
        near = index.near(text)
        if near:
            per_type[ptype]["removed"] += 1
            drops.add("near_duplicate", f"id={record['id']} repeats={kept_ids[ptype][near[0]]}")
            continue
        index.add(len(kept_ids[ptype]), text)
        kept_ids[ptype].append(record["id"])
        yield record


def near_duplicates_left(records: list[dict], threshold: float) -> dict[str, int]:
    """Among the generated records: how many have a near duplicate earlier in the list, of
    their own prompt type (0 after dedup_records) and of any type."""
    same: dict[str, NearDuplicateIndex] = {}
    anywhere = NearDuplicateIndex(threshold)
    left = Counter()
    for number, record in enumerate(r for r in records if r["kind"] in DEDUP_KINDS):
        text = record_text(record)
        if record["type"] not in same:
            same[record["type"]] = NearDuplicateIndex(threshold)
        own = same[record["type"]]
        left["same_type"] += bool(own.near(text))
        left["any_type"] += bool(anywhere.near(text))
        own.add(number, text)
        anywhere.add(number, text)
        left["records"] += 1
    return dict(left)


def split_overlap(
    records: list[dict], exam_questions: list[str], is_held_out_article, threshold: float
) -> dict[str, dict[str, int]]:
    """Questions of the evaluation splits known before encoding with a near duplicate among the
    questions that train: `unseen` (records of held-out articles, `is_held_out_article(title)`)
    and `exam` (the quiz questions). The `recall` split is checked by the encode stage."""
    train = NearDuplicateIndex(threshold)
    unseen = []
    for number, record in enumerate(records):
        if is_held_out_article(record["article"]):
            unseen.append(question_text(record))
        else:
            train.add(number, question_text(record))
    report = {}
    for split, questions in (("unseen", unseen), ("exam", exam_questions)):
        hits = sum(bool(train.near(q)) for q in questions)
        report[split] = {"questions": len(questions), "near_duplicates_in_train": hits}
    return report
