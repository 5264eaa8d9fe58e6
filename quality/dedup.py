"""Near-duplicate removal for generated records, and the near-duplicate report across splits.

A generated record (kind qa or contrastive) repeats an earlier one when both come from the
same prompt type, their text (question and answer) is at similarity >= `threshold`
(quality/near_duplicates.py), and so are their replies alone: a question whose only change is
a prefix ("In the history of..." / "According to the history of...") or a distractor ("It was
not Truman but Rommel" / "not Yahara but Rommel") teaches nothing new. Two blanks or questions
on one sentence with different answers ("____ aircraft" -> "183", "reached ____" -> "Oahu")
are near in their text but teach two facts, so both stay. The first record in file order is kept, so the
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
from quality.near_duplicates import NearDuplicateIndex, similarity

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


def reply_text(record: dict) -> str:
    return "\n".join(m["content"] for m in record["messages"] if m["role"] == "assistant")


class RepeatIndex:
    """Records seen so far; `repeated` finds the first whose text and reply are both near."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.texts = NearDuplicateIndex(threshold)
        self.replies: list[str] = []

    def repeated(self, record: dict) -> int | None:
        """The number (order of `add`) of an earlier record this one repeats, or None."""
        reply = reply_text(record)
        near = (k for k in self.texts.near(record_text(record)) if similarity(reply, self.replies[k]) >= self.threshold)
        return next(near, None)

    def add(self, record: dict) -> None:
        self.texts.add(len(self.replies), record_text(record))
        self.replies.append(reply_text(record))


def dedup_records(
    records: Iterable[dict], threshold: float, drops: Drops, per_type: dict[str, Counter]
) -> Iterator[dict]:
    """The records without the near duplicates of an earlier record of the same prompt type;
    `per_type` counts records in and removed per type."""
    indexes: dict[str, RepeatIndex] = {}
    kept_ids: dict[str, list[str]] = defaultdict(list)
    for record in records:
        if record["kind"] not in DEDUP_KINDS:
            yield record
            continue
        ptype = record["type"]
        per_type[ptype]["in"] += 1
        index = indexes.setdefault(ptype, RepeatIndex(threshold))
        earlier = index.repeated(record)
        if earlier is not None:
            per_type[ptype]["removed"] += 1
            drops.add("near_duplicate", f"id={record['id']} repeats={kept_ids[ptype][earlier]}")
            continue
        index.add(record)
        kept_ids[ptype].append(record["id"])
        yield record


def near_duplicates_left(records: list[dict], threshold: float) -> dict[str, int]:
    """Among the generated records: how many have a near duplicate earlier in the list, of
    their own prompt type (0 after dedup_records) and of any type."""
    same: dict[str, RepeatIndex] = {}
    anywhere = RepeatIndex(threshold)
    left = Counter()
    for record in (r for r in records if r["kind"] in DEDUP_KINDS):
        own = same.setdefault(record["type"], RepeatIndex(threshold))
        left["same_type"] += own.repeated(record) is not None
        left["any_type"] += anywhere.repeated(record) is not None
        own.add(record)
        anywhere.add(record)
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
