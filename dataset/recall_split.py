"""The evaluation splits chosen before encoding: held-out articles (`val`, shown as `unseen`),
and the recall split of held-out questions about trained articles with its near-duplicate guard.

A held-out article is chosen by a stable hash of (seed, title), so membership never depends on
which other articles are present or on their order.

For every article that trains, a seeded share of its question groups is held out: a group is
a `qa` or `contrastive` record, with its contrast-swap mirror (meta.mirror_of names the
original's id) in the same group, so a question and its mirror are held out together. `qpt`
records always train: they carry the window text that teaches the held-out facts.

A held-out question that has a near duplicate among the training questions would measure
memorisation, not recall, so such a group goes back to train. Near duplicate: the project's
one definition, quality/near_duplicates.py (Jaccard >= threshold over word 3-grams or
5-character shingles; MinHash LSH candidates, each confirmed exactly), which the dedup stage
uses too.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable

from quality.near_duplicates import NearDuplicateIndex

HELD_OUT_KINDS = frozenset({"qa", "contrastive"})
EPSILON = 1e-9  # 0.1 * 30 is 3.0000000000000004 in floats: round-up must not make it 4

Group = tuple[str, str]  # (article, group id)


def article_split(article: str, val_fraction: float, seed: int) -> str:
    """'val' or 'train' for an article, from a stable hash (not random.shuffle: membership
    must not depend on which other articles are present or on their order)."""
    digest = hashlib.sha256(f"{seed}\x1f{article}".encode()).digest()
    return "val" if int.from_bytes(digest[:8], "big") / 2**64 < val_fraction else "train"


def group_of(record: dict, record_id: str) -> Group:
    """The record's question group: the original's id for a contrast-swap mirror, else its own."""
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    return record["article"], str(meta.get("mirror_of") or record_id)


def question_of(record: dict) -> str:
    """The record's question: its first user message."""
    return next(m["content"] for m in record["messages"] if m["role"] == "user")


def group_rank(seed: int, group: Group) -> bytes:
    return hashlib.sha256(f"recall\x1f{seed}\x1f{group[0]}\x1f{group[1]}".encode()).digest()


def choose_recall_groups(groups: Iterable[Group], fraction: float, seed: int) -> set[Group]:
    """Per article, round-up(fraction x n) of its n groups, lowest seeded hash first (stable:
    a group's rank depends on its own names only, not on the order records arrive in)."""
    by_article: dict[str, set[Group]] = defaultdict(set)
    for group in groups:
        by_article[group[0]].add(group)
    chosen: set[Group] = set()
    for members in by_article.values():
        take = math.ceil(fraction * len(members) - EPSILON)
        chosen.update(sorted(members, key=lambda g: group_rank(seed, g))[:take])
    return chosen


class RecallQuestionIndex:
    """The recall questions, for look-ups of their near duplicates (quality/near_duplicates.py)."""

    def __init__(self, questions: dict[Group, list[str]], threshold: float) -> None:
        self.entries: list[Group] = [group for group in sorted(questions) for _ in questions[group]]
        self.index = NearDuplicateIndex(threshold)
        texts = (text for group in sorted(questions) for text in questions[group])
        for entry, text in enumerate(texts):
            self.index.add(entry, text)
        self.removed: set[Group] = set()

    def remove(self, group: Group) -> None:
        """The group went back to train: it no longer counts as a held-out question."""
        self.removed.add(group)

    def matching_entries(self, text: str) -> set[int]:
        """Held-out questions (entry numbers) that are near duplicates of `text`."""
        return {entry for entry in self.index.near(text) if self.entries[entry] not in self.removed}

    def matches(self, text: str) -> set[Group]:
        """Held-out groups with a question that is a near duplicate of `text`."""
        return {self.entries[entry] for entry in self.matching_entries(text)}


def guard_near_duplicates(
    recall_questions: dict[Group, list[str]], train_questions: Iterable[str], threshold: float
) -> set[Group]:
    """The held-out groups to move back to train: those with a near duplicate among the training
    questions, repeated until none is left (a moved group's questions train too, so they are
    probed in turn against the groups still held out)."""
    index = RecallQuestionIndex(recall_questions, threshold)
    moved: set[Group] = set()
    pending: list[str] = []
    for text in train_questions:
        pending.append(text)
        while pending:
            for group in sorted(index.matches(pending.pop())):
                index.remove(group)
                moved.add(group)
                pending.extend(recall_questions[group])
    return moved
