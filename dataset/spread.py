"""The article-spread metric of a shuffled stream: adjacent same-article records, and what a
uniform shuffle would give.

Records are opaque bytes here too: each record's "article" is read with a byte-level regex
(no json.loads), so the metric costs little on a large input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from itertools import repeat
from operator import itemgetter

import numpy as np

# The value of the first "article" key, still JSON-escaped (equality is all the metric needs).
# Written as runs of plain characters between escapes, which the regex engine scans in one
# loop each, where (?:[^"\\]|\\.)* took a step per character (3x slower, same matches).
ARTICLE = re.compile(rb'"article"\s*:\s*"([^"\\]*(?:\\.[^"\\]*)*)"')
VALUE = itemgetter(1)  # of an ARTICLE match
UNSEEN = -2  # article_ids' mark for a key not in ids yet


class Spread:
    """Adjacent same-article records in a stream, and what a uniform shuffle would give.

    For a uniform random permutation of n records, n_a of them from article a, each of the n-1
    neighbour pairs is same-article with probability sum n_a (n_a - 1) / (n (n - 1)), so the
    expected count is sum n_a (n_a - 1) / n. The two-pass shuffle has the same expectation
    (a shard's article counts are multinomial), so observed/expected should sit near 1; an
    input grouped by article is far above it. Records without an "article" never match.
    """

    def __init__(self) -> None:
        self.ids: dict[bytes, int] = {}  # article -> dense id; grows with articles, not records
        self.counts = np.zeros(0, dtype=np.int64)
        self.adjacent = 0
        self.max_run = 0
        self._previous = -1  # article id of the last record seen (-1: none)
        self._run = 0  # length of the same-article run that ends at the last record

    def article_ids(self, matches: Iterable[re.Match | None]) -> np.ndarray:
        """The article id (-1: none) of each line, from its ARTICLE match; articles not seen
        before get the next ids."""
        matches = list(matches)
        keys = [m and m[1] for m in matches] if None in matches else list(map(VALUE, matches))
        ids = np.fromiter(map(self.ids.get, keys, repeat(UNSEEN)), dtype=np.int64, count=len(keys))
        for i in np.flatnonzero(ids == UNSEEN).tolist():  # no article, or a new one: few lines
            ids[i] = -1 if keys[i] is None else self.ids.setdefault(keys[i], len(self.ids))
        return ids

    def add(self, lines: list[bytes]) -> None:
        """The next records of the stream (lines without their b"\\n")."""
        self.add_ids(self.article_ids(map(ARTICLE.search, lines)))

    def add_ids(self, ids: np.ndarray) -> None:
        """The next records of the stream, by article id."""
        if not len(ids):
            return
        if len(self.ids) > len(self.counts):  # new articles
            self.counts = np.concatenate((self.counts, np.zeros(len(self.ids) - len(self.counts), dtype=np.int64)))
        self.counts += np.bincount(ids[ids >= 0], minlength=len(self.counts))
        same = (ids == np.concatenate(([self._previous], ids[:-1]))) & (ids >= 0)
        self.adjacent += int(same.sum())
        # A run starts wherever a record differs from its predecessor; the first run of this
        # batch continues the run carried over from the previous batch.
        starts = np.flatnonzero(~same)
        if starts.size == 0:
            self._run += len(ids)
        else:
            lengths = np.diff(np.append(starts, len(ids)))
            self.max_run = max(self.max_run, self._run + int(starts[0]), int(lengths.max()))
            self._run = int(lengths[-1])
        self.max_run = max(self.max_run, self._run)
        self._previous = int(ids[-1])

    def expected_adjacent(self) -> float:
        n = int(self.counts.sum())
        return float((self.counts * (self.counts - 1)).sum() / n) if n else 0.0

    def metrics(self) -> dict:
        expected = self.expected_adjacent()
        return {
            "articles": len(self.ids),
            "adjacent_same_article": self.adjacent,
            "adjacent_same_article_expected": round(expected, 2),
            "adjacent_same_article_ratio": round(self.adjacent / expected, 4) if expected else None,
            "max_same_article_run": self.max_run,
        }
