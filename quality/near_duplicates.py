"""Near-duplicate texts: MinHash LSH finds the candidates, exact Jaccard confirms them.

Two texts are near duplicates when the Jaccard similarity of their word 3-grams, or of their
5-character shingles, is at least `threshold` (text normalised: lowercase, words only). Word
3-grams catch a changed prefix ("In the history of the war, who..."), character shingles a
changed word or name inside a short question.

Candidates come from MinHash LSH (Broder 1997, "On the resemblance and containment of
documents"; Leskovec, Rajaraman, Ullman, Mining of Massive Datasets, ch. 3) in datasketch, one
LSH per shingle kind, so a probe costs a few band look-ups instead of a pass over every text.
LSH misses some pairs near its threshold, so its bands are tuned for a threshold LSH_SLACK
below ours with misses weighted 9:1 over false hits; every candidate is then checked with
exact Jaccard, so what is reported is a true near duplicate.

The one implementation of "near duplicate" in the project: the dedup stage removes them, the
encode stage keeps them out of the recall split (dataset/recall_split.py).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Hashable

from datasketch import MinHash, MinHashLSH

WORD_NGRAM = 3
CHAR_SHINGLE = 5
NUM_PERM = 128  # MinHash permutations: estimate error ~ 1/sqrt(128) ~ 0.09, enough for candidates
LSH_SLACK = 0.15  # LSH tuned this far below the threshold: pairs at the threshold are almost never missed
LSH_WEIGHTS = (0.1, 0.9)  # datasketch (false positive, false negative) weights: misses cost more
MINHASH_SEED = 1


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


def similarity(a: str, b: str) -> float:
    """The larger of the two Jaccard similarities: what `threshold` is compared with."""
    return max(jaccard(x, y) for x, y in zip(shingle_sets(a), shingle_sets(b), strict=True))


@functools.lru_cache
def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) for our threshold: datasketch integrates its error curves to
    choose them, which costs ~0.1 s, so once per threshold rather than once per index."""
    lsh = MinHashLSH(threshold=max(0.05, threshold - LSH_SLACK), num_perm=num_perm, weights=LSH_WEIGHTS)
    return lsh.b, lsh.r


class NearDuplicateIndex:
    """Texts under keys (orderable: ints, strings, tuples); `near(text)` gives the keys of
    those at similarity >= threshold."""

    def __init__(self, threshold: float, num_perm: int = NUM_PERM) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"near-duplicate threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.num_perm = num_perm
        bands = lsh_bands(threshold, num_perm)
        self._lsh = [MinHashLSH(num_perm=num_perm, params=bands) for _ in range(2)]
        # One set of permutations for every MinHash: drawing them is most of a MinHash's cost.
        self._permutations = MinHash(num_perm=num_perm, seed=MINHASH_SEED).permutations
        self._sets: dict[Hashable, tuple[frozenset[str], frozenset[str]]] = {}

    def __len__(self) -> int:
        return len(self._sets)

    def _minhash(self, tokens: frozenset[str]) -> MinHash:
        minhash = MinHash(num_perm=self.num_perm, seed=MINHASH_SEED, permutations=self._permutations)
        minhash.update_batch([t.encode("utf-8") for t in sorted(tokens)])
        return minhash

    def _sketch(self, text: str) -> tuple[tuple[frozenset[str], frozenset[str]], list[MinHash]]:
        sets = shingle_sets(text)
        return sets, [self._minhash(tokens) for tokens in sets]

    def add(self, key: Hashable, text: str) -> None:
        if key in self._sets:
            raise ValueError(f"near-duplicate index: key {key!r} added twice")
        sets, minhashes = self._sketch(text)
        self._sets[key] = sets
        for lsh, minhash in zip(self._lsh, minhashes, strict=True):
            lsh.insert(key, minhash, check_duplication=False)

    def discard(self, key: Hashable) -> None:
        if self._sets.pop(key, None) is not None:
            for lsh in self._lsh:
                lsh.remove(key)

    def near(self, text: str) -> list[Hashable]:
        """Keys of the indexed texts at similarity >= threshold with `text`, sorted."""
        sets, minhashes = self._sketch(text)
        found = set()
        for kind, (lsh, minhash) in enumerate(zip(self._lsh, minhashes, strict=True)):
            for key in lsh.query(minhash):
                if key not in found and jaccard(sets[kind], self._sets[key][kind]) >= self.threshold:
                    found.add(key)
        return sorted(found)
