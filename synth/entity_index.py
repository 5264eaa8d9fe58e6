"""EntityIndex: what a whole corpus of windows mentions, for distractors and bare names.

Built in two passes over the distinct sentences of all windows: the first collects the people
the corpus names with a rank (so a later bare "Paulus" is a person), the second extracts every
entity with that knowledge. `values(kind, detail)` then lists the distinct texts seen, sorted,
so a seeded generator that picks from it is deterministic.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable

from synth.english import FUNCTION_WORDS
from synth.entities import (
    Entity,
    Gazetteer,
    KnownPeople,
    find_entities,
    find_people,
    load_gazetteer,
    name_of,
    surnames,
)

WORD = re.compile(r"[^\W\d_][\w'’.-]*")


def _word_counts(sentences: list[str]) -> tuple[Counter, Counter]:
    """(words capitalised on their own after a sentence's first word, lower-case words).
    A capital inside a longer name ("War Production Board", "Sugar Loaf") is not counted:
    it says nothing about the word alone."""
    capitalised, lower = Counter(), Counter()
    for sentence in sentences:
        words = [m.group().rstrip(".'’") for m in WORD.finditer(sentence)]
        for i, word in enumerate(words):
            if word[:1].islower():
                lower[word] += 1
            elif i > 0 and not words[i - 1][:1].isupper() and not (i + 1 < len(words) and words[i + 1][:1].isupper()):
                capitalised[word] += 1
    return capitalised, lower


def known_names(sentences: list[str], gazetteer: Gazetteer) -> frozenset[str]:
    """Full names and surnames of ranked people in the corpus and of the gazetteer's people,
    minus anything that is also a place or a function word ("Washington", "The")."""
    full = {name_of(p.text, gazetteer) for s in sentences for p in find_people(s, gazetteer)}
    full |= set(gazetteer.people)
    names = set()
    for name in full:
        names.update(n for n in [name, *surnames(name)] if len(n) >= 3)
    rank_words = {w for rank in gazetteer.ranks for w in rank.split()}
    return frozenset(
        n
        for n in names
        if n not in gazetteer.places
        and n not in FUNCTION_WORDS
        and n not in gazetteer.non_names
        and n not in rank_words
    )


class EntityIndex:
    def __init__(self, sentences: Iterable[str], gazetteer: Gazetteer | None = None):
        self.gazetteer = gazetteer or load_gazetteer()
        unique = list(dict.fromkeys(sentences))
        self._capitalised, self._lower = _word_counts(unique)
        self.known = KnownPeople(known_names(unique, self.gazetteer), frozenset(self._lower))
        self._entities: dict[str, tuple[Entity, ...]] = {}
        seen: dict[tuple[str, str], set[str]] = defaultdict(set)
        for sentence in unique:
            for entity in self.entities(sentence):
                seen[(entity.kind, entity.detail)].add(entity.text)
        self._values = {key: tuple(sorted(texts, key=lambda t: (t.lower(), t))) for key, texts in seen.items()}

    @classmethod
    def from_windows(cls, windows: Iterable[dict], gazetteer: Gazetteer | None = None) -> EntityIndex:
        return cls((s for window in windows for s in window["sentences"]), gazetteer)

    def entities(self, sentence: str) -> tuple[Entity, ...]:
        """The sentence's entities, bare known names included (memoised: windows overlap)."""
        if sentence not in self._entities:
            self._entities[sentence] = tuple(find_entities(sentence, self.gazetteer, self.known))
        return self._entities[sentence]

    def values(self, kind: str, detail: str | None = None) -> tuple[str, ...]:
        """Distinct texts of one kind (and sub-kind, if given) across the corpus, sorted."""
        if detail is not None:
            return self._values.get((kind, detail), ())
        merged = {t for (k, _), texts in self._values.items() if k == kind for t in texts}
        return tuple(sorted(merged, key=lambda t: (t.lower(), t)))

    def is_proper(self, word: str) -> bool:
        """A name or proper adjective ("Yorktown", "American"): the gazetteer knows it, or the
        corpus capitalises it mid-sentence at least as often as it writes it in lower case
        ("Production" of "War Production Board" is outvoted by "production"). It keeps its
        capital when it moves from the start of a sentence into a question."""
        word = word.rstrip(".,;:'’")
        if word in self.gazetteer.demonyms or word in self.gazetteer.places:
            return True
        lower = self._lower[word.lower()]
        return lower == 0 or self._capitalised[word] >= lower
