"""Template fields for qpt_wrap: how a user would name a window's article, section and entities.

Per article (from all its windows): `subject`, the title as it reads mid-sentence, taken from
the lead sentence when it starts with it ("The attack on Pearl Harbor was ..." gives "the
attack on Pearl Harbor"; "Operation Barbarossa was ..." keeps no article); whether it is an
event (title words such as Battle, Siege, Operation, Conference, landings) or a person
(not an event and he/his/she/her outnumber it/its two to one); a short `topic` ("Midway",
"the Bulge", "Rommel"); a `place` for "what happened at" ("Pearl Harbor"; none for a
country: "what happened at Britain" is not English).

Over the corpus: how words are written mid-sentence, which tells a heading's proper nouns
("Hiryu", "Savo Island") from its capitalised common words ("Background").

Per window: the `section` heading as a phrase ("Background" becomes "the background",
"Hiryu and Yorktown" stays), years and named entities (synth/qpt_entities.py).

Every field is a string or absent; a template that needs an absent field is not used.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from synth.entity_index import EntityIndex
from synth.qpt_entities import central_entities, central_years

# Word tables, several words a line.
# fmt: off
# Title words that make an article an event (first word, or second after an ordinal; last word).
EVENT_HEAD = {
    "battle", "siege", "invasion", "attack", "operation", "bombing", "bombings", "raid", "evacuation",
    "liberation", "fall", "sinking", "occupation", "blockade", "defence", "defense", "surrender"
}
EVENT_TAIL = {
    "landings", "landing", "campaign", "conference", "offensive", "uprising", "blitz", "raid", "airlift",
    "evacuation", "crisis", "project", "pact", "agreement", "trials", "massacre", "war"
}
ORDINALS = {"first", "second", "third", "fourth", "fifth"}
# Battles named after a country are not places one "happens at" (Battle of Britain, of France).
COUNTRIES = {
    "Britain", "France", "Poland", "Germany", "Italy", "Japan", "Norway", "Greece", "Yugoslavia", "Belgium",
    "Denmark", "Finland", "China", "Burma", "Malaya", "Netherlands", "Philippines", "Atlantic"
}
# fmt: on
PLACE_TITLE = [
    re.compile(
        r"^(?:(?:First|Second|Third) )?(?:Battle|Siege|Attack|Bombing|Raid|Liberation|Fall|Defence|Defense)"
        r" (?:of|on) (?P<place>.+)$"
    ),
    re.compile(r"^(?P<place>.+?) (?:campaign|landings|offensive)$"),
]
PERSONAL = re.compile(r"\b(?:he|his|him|she|her)\b", re.IGNORECASE)
IMPERSONAL = re.compile(r"\b(?:it|its)\b", re.IGNORECASE)
# fmt: off
# Headings that open with these are spans of time or place: "the period between the wars".
PREPOSITIONS = {
    "between", "under", "after", "before", "during", "from", "in", "on", "into", "toward", "towards", "to",
    "with", "without", "against"
}
# -ing words that are nouns, not gerunds: "the morning of 4 June" keeps its "the".
ING_NOUNS = {
    "morning", "evening", "beginning", "building", "bombing", "landing", "uprising", "meeting", "spring", "king",
    "wing", "ring", "shipping", "training", "ceiling", "wedding", "setting"
}
# fmt: on
WORD = re.compile(r"[^\W\d_][\w'’-]*")


@dataclass(frozen=True)
class ArticleInfo:
    subject: str  # mid-sentence form: "the Battle of Midway", "Operation Barbarossa", "Erwin Rommel"
    topic: str  # short form: "Midway", "Rommel", "the Enigma machine"
    kind: str  # event | person | thing
    place: str | None  # "Midway", "the Bulge"; None when the title names no place


def strip_disambiguation(title: str) -> str:
    return re.sub(r"\s*\([^)]*\)$", "", title).strip()


def subject_form(title: str, lead: str, is_event: bool) -> str:
    """The title as the article's own first sentence writes it, with "the" if it uses one."""
    if title.startswith("The "):  # "The Blitz": the article is part of the name, lowercase mid-sentence
        return "the " + title[4:]
    for prefix in ("The ", ""):
        candidate = prefix + title
        if (
            lead[: len(candidate)].lower() == candidate.lower()
            and not lead[len(candidate) : len(candidate) + 1].isalnum()
        ):
            written = lead[len(prefix) : len(candidate)]
            return ("the " + written) if prefix else written
    # Wikipedia style: "the Battle of X", but "Operation X" and names without an article
    return "the " + title if is_event and not title.startswith("Operation ") else title


def is_event_title(title: str) -> bool:
    words = title.lower().split()
    head = words[1:2] if words[:1] and words[0] in ORDINALS else words[:1]
    return bool(set(head) & EVENT_HEAD or (words and words[-1] in EVENT_TAIL))


@dataclass(frozen=True)
class ProperNouns:
    """Corpus evidence for keeping a heading word's capital."""

    words: frozenset[str]  # capitalised mid-sentence at least twice as often as written in lowercase
    pairs: frozenset[tuple[str, str]]  # adjacent capitalised words seen together ("Pearl Harbor")

    def keep(self, words: list[str]) -> list[bool]:
        keep = [w in self.words or w.isupper() or not w[:1].isupper() for w in words]
        for i in range(len(words) - 1):
            if (words[i], words[i + 1]) in self.pairs:
                keep[i] = keep[i + 1] = True
        return keep


def proper_nouns(sentences: Iterable[str]) -> ProperNouns:
    """Proper nouns ("Hiryu", "June", "Savo Island") as opposed to capitalised common words
    ("Background", the "War" of World War) by how the corpus writes them mid-sentence. A word
    that mostly heads a longer name ("Operation" Dynamo, "Pearl" Harbor) is proper only
    inside a pair the corpus has seen."""
    capitalised: Counter = Counter()
    heads: Counter = Counter()
    lowercase: Counter = Counter()
    pairs = set()
    for sentence in sentences:
        words = [m.group() for m in WORD.finditer(sentence)]
        for i, word in enumerate(words[1:], start=1):
            if not word[0].isupper():
                lowercase[word] += 1
                continue
            capitalised[word] += 1
            if i + 1 < len(words) and words[i + 1][0].isupper():
                heads[word] += 1
            if words[i - 1][0].isupper():
                pairs.add((words[i - 1], word))
    proper = frozenset(w for w, n in capitalised.items() if n >= 2 * lowercase[w.lower()] and heads[w] * 2 <= n)
    return ProperNouns(proper, frozenset(pairs))


def article_info(title: str, lead: str, text: str) -> ArticleInfo:
    clean = strip_disambiguation(title)
    event = is_event_title(clean)
    subject = subject_form(clean, lead, event)
    personal, impersonal = len(PERSONAL.findall(text)), len(IMPERSONAL.findall(text))
    person = not event and not subject.startswith("the ") and personal > 2 * impersonal and " " in clean
    place = None
    for pattern in PLACE_TITLE:
        match = pattern.match(clean)
        if match:
            place = match.group("place")
            place = None if place.removeprefix("the ") in COUNTRIES else place
            break
    if person:
        topic = clean.split()[-1]
    elif place:
        topic = place
    else:
        topic = re.sub(r" (?:during|in) (?:World War II|the Second World War)$", "", subject)
    kind = "event" if event else "person" if person else "thing"
    return ArticleInfo(subject, topic, kind, place)


def articles_info(windows: list[dict]) -> dict[str, ArticleInfo]:
    """ArticleInfo for every article, from its lead window (the smallest start) and all its text."""
    by_article: dict[str, list[dict]] = defaultdict(list)
    for window in windows:
        by_article[window["article"]].append(window)
    info = {}
    for title, group in by_article.items():
        group = sorted(group, key=lambda w: w["start"])
        info[title] = article_info(title, group[0]["text"], " ".join(w["text"] for w in group))
    return info


def section_phrase(heading: str, proper: ProperNouns) -> tuple[str, bool] | None:
    """("the background", True) or ("Hiryu and Yorktown", False): the heading as a phrase, and
    whether it is a common-noun phrase (then "the … of X" reads well, else "… in X")."""
    words = heading.split()
    had_the = bool(words) and words[0].lower() == "the"
    words = words[1:] if had_the else words
    if not words:
        return None
    keep = proper.keep([w.strip(",:") for w in words])
    lowered = [w if k else w.lower() for w, k in zip(words, keep, strict=True)]
    phrase = " ".join(lowered)
    first = lowered[0].strip(",:")
    if not had_the and first in PREPOSITIONS:
        return "the period " + phrase, False  # "Between the Wars": "the period between the wars"
    if not had_the and first.endswith("ing") and first not in ING_NOUNS:
        return phrase, False  # "fighting in the city", "breaking the blockade": no "the" in front
    common = first[0].islower()
    return ("the " + phrase if common or had_the else phrase), common


def window_fields(
    window: dict, info: ArticleInfo, proper: ProperNouns, index: EntityIndex, rng: random.Random
) -> dict[str, str]:
    """Every field a template may use for this window; rng picks the year and entities;
    `proper` (proper_nouns over the corpus) decides which heading words keep their capital,
    `index` (synth.qpt_entities.build_index over the corpus) finds the entities."""
    fields = {"article": strip_disambiguation(window["article"]), "subject": info.subject, "topic": info.topic}
    if info.kind == "event":
        fields["event"] = info.subject
    if info.kind == "person":
        fields["name"] = info.subject
    else:
        fields["thing"] = info.subject
    if info.place:
        fields["place"] = info.place
    section = section_phrase(window.get("section") or "", proper)
    if section:
        phrase, common = section
        fields["section"] = phrase
        joins = {"event": "in", "person": "in the life of", "thing": "in the history of"}
        join = "of" if common else joins[info.kind]
        fields["section_of"] = f"{phrase} {join}"
    years = central_years(window, index)
    if years:
        fields["year"] = rng.choice(years)
    title_words = set(re.findall(r"\w+", window["article"])) | {"the"}
    entities = central_entities(window, index)
    # an entity the title already names ("Operation Barbarossa" in its own article) asks nothing new
    fresh = {
        k: [e for e in v if not set(re.findall(r"\w+", e)) <= title_words and e.split()[-1] not in title_words]
        for k, v in entities.items()
    }
    if fresh["person"]:
        fields["person"] = rng.choice(fresh["person"])
    named = fresh["operation"] + fresh["unit"] + fresh["person"]
    if named:
        fields["entity"] = rng.choice(named)
    return fields
