"""The recall split: held-out questions about trained articles, and the near-duplicate guard.

For every article that trains, a seeded share of its question groups is held out: a group is
a `qa` or `contrastive` record, with its contrast-swap mirror (meta.mirror_of names the
original's id) in the same group, so a question and its mirror are held out together. `qpt`
records always train: they carry the window text that teaches the held-out facts.

A held-out question that has a near duplicate among the training questions would measure
memorisation, not recall, so such a group goes back to train. Near duplicate: Jaccard >=
threshold over word 3-grams or over 5-character shingles of the normalised text (lowercase,
words only). Found exactly, without all-pairs comparison, by prefix filtering (Chaudhuri et
al. 2006, "A primitive operator for similarity joins"; Bayardo et al. 2007, "All-Pairs"): two
sets with Jaccard >= t share a token among the first |x| - ceil(t|x|) + 1 of each, under any
common total order. The order used is rarest-in-the-recall-questions first, so probe prefixes
hit few (and only rare) index entries; every candidate is then checked with exact Jaccard.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable

HELD_OUT_KINDS = frozenset({"qa", "contrastive"})
WORD_NGRAM = 3
CHAR_SHINGLE = 5
EPSILON = 1e-9  # 0.1 * 30 is 3.0000000000000004 in floats: round-up must not make it 4

Group = tuple[str, str]  # (article, group id)


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


def shingle_sets(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """(word 3-grams, 5-character shingles) of the normalised text; a text too short for one
    n-gram is its own single shingle (so it matches only its exact normalised copy)."""
    words = re.findall(r"\w+", text.lower())
    joined = " ".join(words)
    grams = {" ".join(words[i : i + WORD_NGRAM]) for i in range(len(words) - WORD_NGRAM + 1)} or {joined}
    chars = {joined[i : i + CHAR_SHINGLE] for i in range(len(joined) - CHAR_SHINGLE + 1)} or {joined}
    return frozenset(grams), frozenset(chars)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def prefix_length(size: int, threshold: float) -> int:
    return size - math.ceil(threshold * size - EPSILON) + 1


class NearDuplicateIndex:
    """The recall questions, for exact `Jaccard >= threshold` look-ups of any probe text."""

    def __init__(self, questions: dict[Group, list[str]], threshold: float) -> None:
        self.threshold = threshold
        self.entries: list[tuple[Group, tuple[frozenset[str], frozenset[str]]]] = [
            (group, shingle_sets(text)) for group in sorted(questions) for text in questions[group]
        ]
        self.removed: set[Group] = set()
        self.frequency = [Counter(), Counter()]  # per shingle kind: in how many recall questions
        for _, sets in self.entries:
            for kind, tokens in enumerate(sets):
                self.frequency[kind].update(tokens)
        self.postings: list[dict[str, list[int]]] = [defaultdict(list), defaultdict(list)]
        for entry, (_, sets) in enumerate(self.entries):
            for kind, tokens in enumerate(sets):
                for token in self._prefix(kind, tokens):
                    self.postings[kind][token].append(entry)

    def _prefix(self, kind: int, tokens: frozenset[str]) -> list[str]:
        order = sorted(tokens, key=lambda t: (self.frequency[kind][t], t))
        return order[: prefix_length(len(tokens), self.threshold)]

    def remove(self, group: Group) -> None:
        """The group went back to train: it no longer counts as a held-out question."""
        self.removed.add(group)

    def matching_entries(self, text: str) -> set[int]:
        """Held-out questions (entry numbers) that are near duplicates of `text`."""
        found: set[int] = set()
        for kind, tokens in enumerate(shingle_sets(text)):
            candidates = {e for t in self._prefix(kind, tokens) for e in self.postings[kind].get(t, ())}
            for entry in candidates - found:
                group, sets = self.entries[entry]
                if group not in self.removed and jaccard(tokens, sets[kind]) >= self.threshold:
                    found.add(entry)
        return found

    def matches(self, text: str) -> set[Group]:
        """Held-out groups with a question that is a near duplicate of `text`."""
        return {self.entries[entry][0] for entry in self.matching_entries(text)}


def guard_near_duplicates(
    recall_questions: dict[Group, list[str]], train_questions: Iterable[str], threshold: float
) -> set[Group]:
    """The held-out groups to move back to train: those with a near duplicate among the training
    questions, repeated until none is left (a moved group's questions train too, so they are
    probed in turn against the groups still held out)."""
    index = NearDuplicateIndex(recall_questions, threshold)
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
