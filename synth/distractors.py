"""Distractors: same-kind entities from elsewhere in the corpus, for false facts and choices.

A distractor replaces a true entity in a false statement, a false-premise question or a choice,
so it must make the fact false rather than vaguer or accidentally true:
- it has the entity's kind and sub-kind (a river for a river, a ranked name for a ranked name);
- the window's article never mentions it (the article may name Belgium as truly invaded too);
- it differs clearly (another year for a date, at least 1.5x for a count, the same number form),
  and a place neither shares a name word with the true one nor contains it ("Europe" is no
  false replacement for "Normandy", nor "Britain" for "England");
- it is no true alternative: no other sentence of the corpus names it with the same verb and
  a name of the same sentence ("the Luftwaffe attacked Yugoslavia" rules Yugoslavia out of
  "the Luftwaffe attacked Britain").
Among those, plausible ones (a count within 10x, a year within 6) are preferred when there are
enough for a four-way choice.
"""

from __future__ import annotations

import re
from collections import defaultdict

from synth.english import FUNCTION_WORDS, MONTHS, PAST_TO_BASE, SPELLED, word_set
from synth.entities import Entity, name_of, number_value, surnames
from synth.entity_index import EntityIndex

YEAR = re.compile(r"\b1\d{3}\b")
WORD = re.compile(r"[\w'’-]+")
NAME = re.compile(r"\b[A-Z][\w'’-]+")
# Words a place name shares with unrelated places ("Sand Island", "Savo Island").
PLACE_NOUNS = word_set("island islands sea ocean bay lake beach river gulf of the")
# A place within another: a statement stays true when one replaces the other.
WITHIN = {
    "Britain": ("England", "Scotland", "Wales"),
    "Great Britain": ("England", "Scotland", "Wales"),
    "United Kingdom": ("England", "Scotland", "Wales", "Britain", "Great Britain"),
}


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def distinct_values(entity: Entity, value: str) -> bool:
    """A distractor must differ clearly: a different year for dates, at least 1.5x for counts,
    and neither may be the start of the other ("3" vs "3 million" confuses a parser and a reader)."""
    a, b = _norm(entity.text), _norm(value)
    if not b or a == b or a.startswith(b + " ") or b.startswith(a + " "):
        return False
    if entity.kind == "place":
        return not _place_overlap(entity.text, value)
    if entity.kind == "date":
        years_a, years_b = YEAR.findall(entity.text), YEAR.findall(value)
        if years_a and years_b and entity.detail == "year":
            return abs(int(years_a[0]) - int(years_b[0])) >= 2
        return not years_a or years_a != years_b
    if entity.kind == "number":
        if (entity.text.lower() in SPELLED) != (value.lower() in SPELLED):
            return False
        x, y = number_value(entity.text), number_value(value)
        return max(x, y) >= 1.5 * min(x, y)
    return True


def _place_overlap(a: str, b: str) -> bool:
    """One place names or contains the other: a shared name word ("Europe", "Western Europe")
    or a WITHIN pair ("Britain", "England")."""
    words_a, words_b = (set(_norm(x).split()) - PLACE_NOUNS for x in (a, b))
    return bool(words_a & words_b) or b in WITHIN.get(a, ()) or a in WITHIN.get(b, ())


def plausible(entity: Entity, value: str) -> bool:
    """A distractor a reader could believe: a count within 10x, a year within 6."""
    if entity.kind == "number":
        x, y = number_value(entity.text), number_value(value)
        return max(x, y) <= 10 * min(x, y)
    if entity.kind == "date":
        years_a, years_b = YEAR.findall(entity.text), YEAR.findall(value)
        return not (years_a and years_b) or abs(int(years_a[0]) - int(years_b[0])) <= 6
    return True


class Distractors:
    """Distractor candidates per (article, entity), memoised: windows of one article share them."""

    def __init__(self, index: EntityIndex, windows: list[dict]):
        self.index = index
        texts: dict[str, list[str]] = {}
        for window in windows:
            texts.setdefault(window["article"], []).append(window["text"])
        # lower case: a spelled "Three" from the index must not hide the article's "three"
        self._article_text = {article: " ".join(parts).lower() for article, parts in texts.items()}
        self._pools: dict[tuple[str, str, str | None], tuple[str, ...]] = {}
        self._candidates: dict[tuple[str, Entity], tuple[str, ...]] = {}
        self._false: dict[tuple[str, str, Entity], tuple[str, ...]] = {}
        # entity text -> the word sets of the corpus sentences that name it
        self._mentions: dict[str, list[frozenset[str]]] = defaultdict(list)
        for sentence in dict.fromkeys(s for window in windows for s in window["sentences"]):
            words = frozenset(WORD.findall(sentence.lower()))
            for found in index.entities(sentence):
                self._mentions[found.text].append(words)

    def _pool(self, article: str, entity: Entity) -> tuple[str, ...]:
        """Same-kind values the article never mentions (numbers: any count; others: same detail)."""
        detail = None if entity.kind == "number" else entity.detail
        key = (article, entity.kind, detail)
        if key not in self._pools:
            text = self._article_text.get(article, "")
            self._pools[key] = tuple(
                v
                for v in self.index.values(entity.kind, detail)
                if not any(k.lower() in text for k in (surnames(name_of(v)) if entity.kind == "person" else [v]))
            )
        return self._pools[key]

    def candidates(self, article: str, entity: Entity) -> tuple[str, ...]:
        """The distractors `entity` may get, in the index's deterministic order."""
        key = (article, entity)
        if key not in self._candidates:
            distinct = tuple(v for v in self._pool(article, entity) if distinct_values(entity, v))
            close = tuple(v for v in distinct if plausible(entity, v))
            self._candidates[key] = close if len(close) >= 3 else distinct
        return self._candidates[key]

    def for_sentence(self, article: str, sentence: str, entity: Entity) -> tuple[str, ...]:
        """`candidates` minus the true alternatives for the event of `sentence`: values some
        corpus sentence names with one of its past-tense verbs and one of its other names."""
        key = (article, sentence, entity)
        if key not in self._false:
            own = set(_norm(entity.text).split())
            verbs = {w for w in WORD.findall(sentence) if w in PAST_TO_BASE}
            names = {
                w.lower()
                for w in NAME.findall(sentence)
                if w not in FUNCTION_WORDS and w not in MONTHS and w.lower() not in own
            }
            self._false[key] = tuple(
                value
                for value in self.candidates(article, entity)
                if not any(names & words and (not verbs or verbs & words) for words in self._mentions.get(value, ()))
            )
        return self._false[key]
