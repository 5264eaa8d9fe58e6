"""Entities of a window for qpt_wrap templates, read through synth/entities.py.

The shared extractor (synth.entities with the corpus-wide synth.entity_index.EntityIndex)
finds dates, people, places, operations and units with spans; this module turns them into
the strings a question uses: a person without the rank ("Col. Gen. Gerd von Rundstedt" is
asked about as "Gerd von Rundstedt"), "the" where English needs it ("the 6th Army", but
"Army Group B", "Operation Uranus"), and years of the war only. Places are left out: in
"What role did {entity} play in ...?" a place a window mentions in passing ("Tokyo" in the
Battle of Midway) reads as a claim the window does not make.
"""

from __future__ import annotations

import re

from synth.entities import YEAR, Entity, load_gazetteer, name_of, surnames
from synth.entity_index import EntityIndex

# Years of the war and its run-up only: "what happened during the Battle of Iwo Jima in 1954"
# (a legacy section's year) would ask about something the battle did not do.
FIRST_YEAR, LAST_YEAR = 1931, 1945


def build_index(windows: list[dict]) -> EntityIndex:
    """One index over the corpus: a bare "Paulus" is a person once some window ranks him."""
    return EntityIndex.from_windows(windows)


def central(mentions: list[int]) -> bool:
    """What a window is about, not what it names in passing: named in two of its sentences
    at least ("What role did Hitler play ...?" needs a window about Hitler; one sentence on
    Queen Wilhelmina's flight in a passage on the Meuse crossing is no answer about her)."""
    return len(set(mentions)) >= 2


def year_mentions(window: dict, index: EntityIndex) -> dict[str, list[int]]:
    """War years the window's dates mention -> the sentences that mention them."""
    seen: dict[str, list[int]] = {}
    for i, sentence in enumerate(window["sentences"]):
        for entity in index.entities(sentence):
            if entity.kind == "date":
                for year in re.findall(rf"\b{YEAR}\b", entity.text):
                    if FIRST_YEAR <= int(year) <= LAST_YEAR:
                        seen.setdefault(year, []).append(i)
    return seen


def window_years(window: dict, index: EntityIndex) -> list[str]:
    """Distinct war years the window's dates mention, sorted."""
    return sorted(year_mentions(window, index))


def central_years(window: dict, index: EntityIndex) -> list[str]:
    """The year the window is about, or none: named in more of its sentences than any other
    year, in two at least and in half of the sentences that name a year ("What happened in
    1942?" must not get a passage on 1941)."""
    mentions = year_mentions(window, index)
    counts = sorted((len(set(m)), y) for y, m in mentions.items())
    dated = len({i for m in mentions.values() for i in m})
    if not counts or counts[-1][0] < 2 or 2 * counts[-1][0] < dated:
        return []
    if len(counts) > 1 and counts[-2][0] == counts[-1][0]:
        return []
    return [counts[-1][1]]


def as_asked(entity: Entity, famous: frozenset[str]) -> str | None:
    """The entity as a question names it, or None when it is too bare to stand alone."""
    if entity.kind == "person":
        if entity.detail == "ranked":
            return name_of(entity.text)
        # a bare surname stands alone only for the famous ("Hitler", "Churchill"), not "Patch"
        return entity.text if entity.text in famous else None
    if entity.kind == "unit":
        bare = entity.text.startswith(("Army Group", "Task Force")) or entity.text[-1].isdigit()
        return entity.text if bare else "the " + entity.text
    if entity.kind == "operation":
        return entity.text
    return None


def window_entities(window: dict, index: EntityIndex) -> dict[str, list[str]]:
    """Distinct people, operations and units of a window, in order of appearance."""
    people = load_gazetteer().people
    famous = frozenset(people) | {s for name in people for s in surnames(name)}
    found: dict[str, list[str]] = {"person": [], "operation": [], "unit": []}
    for sentence in window["sentences"]:
        for entity in index.entities(sentence):
            text = as_asked(entity, famous) if entity.kind in found else None
            if text and text not in found[entity.kind]:
                found[entity.kind].append(text)
    return found


def central_entities(window: dict, index: EntityIndex) -> dict[str, list[str]]:
    """window_entities that the window is about (central); a person's bare surname counts as
    a mention ("Zhukov" after "Gen. Georgy Zhukov")."""
    sentences = window["sentences"]
    result = {}
    for kind, texts in window_entities(window, index).items():
        keys = {t: surnames(t) if kind == "person" else [t.removeprefix("the ")] for t in texts}
        result[kind] = [
            t
            for t in texts
            if central(
                [i for i, s in enumerate(sentences) if any(re.search(rf"\b{re.escape(k)}\b", s) for k in keys[t])]
            )
        ]
    return result
