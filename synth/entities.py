"""Find dates, counts, people, places, operations and units in a sentence, with character spans.

Everything here is rule-based and deterministic: regular expressions for dates, numbers,
units and operations, a rank-led scanner for people, and a gazetteer (data/gazetteer.yaml) for
places, ranks and unranked leaders. A bare surname ("Paulus") counts as a person only when the
corpus also names that person with a rank ("Gen. Friedrich Paulus"); `KnownPeople` holds those
names and `EntityIndex` (synth/entity_index.py) builds it from all windows.

Each finder returns `Entity(kind, text, start, end, detail)` with `sentence[start:end] == text`;
`detail` is the sub-kind that a same-kind distractor must share:
  date    day | month | year | range | day_noyear
  number  the counted noun phrase ("Axis soldiers"), "" when none follows
  person  ranked | bare
  place   the gazetteer group (city, river_the, ...)
  unit    the formation word, lower case (army, division, fleet, ...)
  operation  ""
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from synth.english import FUNCTION_WORDS, MEASURES, NOUN_STOP, PARTICLES, PLURAL_WORDS, SPELLED, follows_name_word
from synth.gazetteer import Gazetteer, load_gazetteer


@dataclass(frozen=True)
class Entity:
    kind: str
    text: str
    start: int
    end: int
    detail: str = ""


# --- dates -------------------------------------------------------------------------------

MONTH = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November|December"
    r"|Jan\.|Feb\.|Mar\.|Apr\.|Jun\.|Jul\.|Aug\.|Sept\.|Sep\.|Oct\.|Nov\.|Dec\.)"
)
YEAR = r"(?:18\d\d|19\d\d|20[0-4]\d)"
DAY = r"(?:3[01]|[12]\d|0?[1-9])"
SINGLE_DATE = (
    rf"(?:{DAY}\s+{MONTH}(?:,?\s+{YEAR})?|{MONTH}\s+{DAY}(?:,\s+{YEAR})?(?![\d:])|{MONTH}\s+{YEAR}"
    rf"|(?<![\d,.$£]){YEAR}(?![\d,]\d|\.\d|\w))"
)
DATE = re.compile(
    rf"(?<![\w.])(?:(?P<dayrange>{DAY}\s*(?:–|-|\s+to\s+|\s+and\s+)\s*{DAY}\s+{MONTH}(?:,?\s+{YEAR})?)"
    rf"|(?P<range>{SINGLE_DATE}\s*(?:–|-|\s+to\s+|\s+and\s+)\s*{SINGLE_DATE})|(?P<single>{SINGLE_DATE}))"
)


def _date_precision(text: str) -> str:
    has_year = re.search(rf"\b{YEAR}\b", text) is not None
    has_month = re.search(MONTH, text) is not None
    has_day = re.search(rf"(?<![\d,])\b{DAY}\b(?!\d)", re.sub(rf"\b{YEAR}\b", "", text)) is not None
    if has_day and has_month:
        return "day" if has_year else "day_noyear"
    return "month" if has_month else "year"


def _is_count(sentence: str, start: int, end: int) -> bool:
    """A bare four-digit "year" that is really a count: "about 1800 horses", "and 1900 tanks"."""
    before, after = sentence[:start], sentence[end:]
    if re.search(r"\b(?:about|some|roughly|nearly|over|than|approximately|approx\.|c\.|almost|around)\s+$", before):
        return True
    dated = re.search(r"\b(?:[Ii]n|[Bb]y|of|from|to|[Uu]ntil|since|during|before|after|early|late|mid-?)\s*$", before)
    return not dated and re.match(r"\s+[a-z]+s\b", after) is not None


def find_dates(sentence: str) -> list[Entity]:
    """Dates: "22 June 1941", "Dec. 7, 1941", "June 1942", a bare year ("in 1944"), and
    ranges ("4 to 7 June 1942", "December 1941 to August 1945") as one entity."""
    found = []
    for match in DATE.finditer(sentence):
        text = match.group().rstrip()
        detail = "range" if match.lastgroup in ("dayrange", "range") else _date_precision(text)
        if detail == "year" and _is_count(sentence, match.start(), match.start() + len(text)):
            continue
        found.append(Entity("date", text, match.start(), match.start() + len(text), detail))
    return found


def find_years(sentence: str) -> list[Entity]:
    """Every year inside a date (a judge compares years even when the day differs)."""
    return [
        Entity("year", m.group(), d.start + m.start(), d.start + m.end())
        for d in find_dates(sentence)
        for m in re.finditer(rf"\b{YEAR}\b", d.text)
    ]


# --- numbers -----------------------------------------------------------------------------

SCALE = {"thousand": 1e3, "million": 1e6, "billion": 1e9}
NUMBER = re.compile(
    r"(?<![\w.,$£/:–-])(?:(?P<digits>\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?:\s+(?:thousand|million|billion))?"
    r"(?![\w%]|[.,:]\d|[–-])|(?P<spelled>(?i:" + "|".join(SPELLED) + r"))(?![\w-]))"
)
WORD_AFTER = re.compile(r"\s+([A-Za-z][A-Za-z-]*)")


def number_value(text: str) -> float:
    """Numeric value of a number entity's text ("1.5 million" -> 1500000.0, "four" -> 4)."""
    head, *scale = text.lower().split()
    value = float(SPELLED[head]) if head in SPELLED else float(head.replace(",", ""))
    return value * (SCALE[scale[0]] if scale else 1)


def counted_noun(sentence: str, end: int) -> str:
    """The noun phrase a number counts: up to three words after it, ending at the first
    plural-looking word ("3 million Axis soldiers" -> "Axis soldiers"); "" if none."""
    words, pos = [], end
    if (first := WORD_AFTER.match(sentence, pos)) and first.group(1) in MEASURES:
        return ""  # "85 mm guns", "90 percent": a measure, not a count
    while len(words) < 3 and (match := WORD_AFTER.match(sentence, pos)):
        word = match.group(1)
        if word.lower() in NOUN_STOP or sentence[match.end() : match.end() + 1] == "-":
            break
        words.append(word)
        if word in PLURAL_WORDS or (word.endswith("s") and not word.endswith("ss") and word.islower()):
            return " ".join(words)
        if sentence[match.end() : match.end() + 1] not in ("", " "):  # punctuation ends the phrase
            break
        pos = match.end()
    return ""


def find_numbers(sentence: str) -> list[Entity]:
    """Counts: digits ("300,000", "1.5 million") and spelled small numbers ("four") that
    count a noun. Skipped: numbers in names ("Task Force 16", "Bf 109"), times, ordinals."""
    found, dates = [], find_dates(sentence)
    for match in NUMBER.finditer(sentence):
        if any(d.start < match.end() and match.start() < d.end for d in dates):
            continue  # "22" of "22 June 1941"
        before = sentence[: match.start()].split()
        if before and before[-1][:1].isupper() and before[-1] not in FUNCTION_WORDS:
            continue  # "Force 16", "Squadron 8", "No. 11"
        noun = counted_noun(sentence, match.end())
        if match.group("spelled") and not noun:
            continue
        if re.match(r"\s*[ap]\.m\.", sentence[match.end() :]):
            continue
        found.append(Entity("number", match.group(), match.start(), match.end(), noun))
    return found


# --- units and operations ----------------------------------------------------------------

ORDINAL = (
    r"(?:\d+(?:st|nd|rd|th)|First|Second|Third|Fourth|Fifth|Sixth|Seventh|Eighth|Ninth|Tenth|Eleventh"
    r"|Twelfth|Thirteenth|Fourteenth|Fifteenth|Sixteenth|Seventeenth|Eighteenth|Nineteenth|Twentieth"
    r"|[IVXL]+)"
)
UNIT_NOUN = (
    r"(?:Army Group|Army|Corps|Division|Brigade|Regiment|Battalion|Fleet|Flotilla|Squadron|Wing|Group|Front|Force)"
)
UNIT = re.compile(
    rf"(?<![\w-])(?:{ORDINAL}\s+(?:(?:SS|[A-Z][a-z]+)\s+){{0,3}}?{UNIT_NOUN}"
    r"|Army Group (?:North|South|Centre|Center|Africa|A|B|C|G|H)|Task Force \d+"
    r"|(?:Torpedo|Bombing|Fighting|Scouting) Squadron \d+"
    r"|Afrika Korps|Combined Fleet|Pacific Fleet|Home Fleet|Baltic Fleet|Black Sea Fleet)(?![\w-])"
)
OPERATION = re.compile(
    r"(?<![\w-])Operation\s+(?:Market Garden|Sea Lion|Spring Awakening|Little Saturn|Winter Storm"
    r"|[A-Z][\w-]*)(?![\w-])"
)


def find_units(sentence: str) -> list[Entity]:
    """Formations: "6th Army", "101st Airborne Division", "XXX Corps", "Task Force 16"."""
    found = []
    for match in UNIT.finditer(sentence):
        nouns = re.findall(rf"{UNIT_NOUN}|Korps", match.group())  # "Army Group Center" -> army group
        noun = nouns[0] if nouns[0] == "Army Group" else nouns[-1]
        noun = "task force" if noun == "Force" and "Task" in match.group() else noun.lower().replace("korps", "corps")
        found.append(Entity("unit", match.group(), match.start(), match.end(), noun))
    return found


def find_operations(sentence: str) -> list[Entity]:
    return [Entity("operation", m.group(), m.start(), m.end()) for m in OPERATION.finditer(sentence)]


# --- places ------------------------------------------------------------------------------


def _inside_longer_name(sentence: str, start: int, end: int) -> bool:
    """True for "Battle of Midway", "Siege of Leningrad", "USS Arizona", "Leningrad Front"."""
    before = sentence[:start]
    if re.search(r"\b[A-Z][\w-]*\s+of\s+(?:the\s+)?$", before):
        return True
    if follows_name_word(before) and not before.endswith(("the ", "The ")):
        return True
    return re.match(r"\s+[A-Z]", sentence[end:]) is not None


def find_places(sentence: str, gazetteer: Gazetteer | None = None) -> list[Entity]:
    """Gazetteer places; names of a `_the` group only right after "the"."""
    gazetteer = gazetteer or load_gazetteer()
    found = []
    for match in gazetteer.place_pattern.finditer(sentence):
        group = gazetteer.places[match.group()]
        if group.endswith("_the") and not re.search(r"\b[Tt]he\s+$", sentence[: match.start()]):
            continue
        if not _inside_longer_name(sentence, match.start(), match.end()):
            found.append(Entity("place", match.group(), match.start(), match.end(), group))
    return found


# --- people ------------------------------------------------------------------------------

NAME_TOKEN = re.compile(
    r"\s+(?:(?P<initial>[A-Z]\.)(?![A-Za-z])|(?P<suffix>(?:Jr|Sr)\.|(?:II|III|IV|VI|VII|VIII)(?!\w))"
    r"|(?P<particle>von|van|der|de|den|du|da|di|la|le)(?=\s+[^\W\d_])|(?P<nick>[\"“][A-Z][a-z]+[\"”])"
    r"|(?P<word>[^\W\d_][\w'’-]*))"
)


def _name_end(sentence: str, pos: int, gazetteer: Gazetteer) -> int | None:
    """End of the name that follows a rank at `pos`: capitalised words, initials, particles,
    a quoted nickname and a suffix ("Chester W. Nimitz", "Gerd von Rundstedt", "Buckner Jr.");
    it must end on a word or a suffix, and stops before a possessive "'s"."""
    end, words = None, 0
    while words < 4 and (match := NAME_TOKEN.match(sentence, pos)):
        kind, token = match.lastgroup, match.group(match.lastgroup)
        if kind == "suffix":
            return match.end() if words else end
        if kind == "word":
            bare = re.sub(r"['’]s$", "", token)
            dotted_rank = sentence[match.end() : match.end() + 1] == "." and f"{bare}." in gazetteer.rank_words
            if not token[0].isupper() or bare in gazetteer.non_names or dotted_rank:
                break  # "Foreign Minister Col. Józef Beck": the name starts after the second rank
            if words == 0 and bare in gazetteer.places:
                break  # "Commander Europe"
            words, end = words + 1, match.start(kind) + len(bare)
            if bare != token:
                break
        pos = match.end()
    return end


def name_of(person: str, gazetteer: Gazetteer | None = None) -> str:
    """A person's text without the rank ("Lt. Gen. Vasily Chuikov" -> "Vasily Chuikov")."""
    match = (gazetteer or load_gazetteer()).rank_pattern.match(person)
    return person[match.end() :].strip() if match else person


def surnames(name: str) -> list[str]:
    """How a name is shortened in prose: "Gerd von Rundstedt" -> ["von Rundstedt", "Rundstedt"]."""
    tokens = [t for t in name.split() if not re.fullmatch(r"(?:Jr|Sr)\.|[IVX]+|[\"“].*|[A-Z]\.", t)]
    if not tokens:
        return []
    result = [tokens[-1]]
    if len(tokens) >= 2 and tokens[-2] in PARTICLES:
        result.insert(0, f"{tokens[-2]} {tokens[-1]}")
    return result


@dataclass(frozen=True)
class KnownPeople:
    """Names that count as people without a rank: full names and surnames of people the
    corpus names with a rank, plus the gazetteer's list. `common_words` are lower-case words
    of the corpus; a surname that is also one ("Best", "Short") is trusted only mid-sentence."""

    names: frozenset[str]
    common_words: frozenset[str] = frozenset()

    @functools.cached_property
    def pattern(self) -> re.Pattern | None:
        names = sorted(self.names, key=lambda n: (-len(n), n))
        return re.compile(r"(?<![\w-])(?:" + "|".join(map(re.escape, names)) + r")(?![\w-])") if names else None


def _plausible_bare_name(sentence: str, start: int, end: int, known: KnownPeople) -> bool:
    before = sentence[:start]
    if follows_name_word(before):
        return False  # "Fort Nimitz", "USS Hornet": part of a longer name
    if re.search(r"\b[Tt]he\s+$", before) or re.match(r"\s+[A-Z]", sentence[end:]):
        return False  # "the King", "Marshall Islands"
    return before.strip(' "“') != "" or sentence[start:end].lower() not in known.common_words


def find_people(sentence: str, gazetteer: Gazetteer | None = None, known: KnownPeople | None = None) -> list[Entity]:
    """Ranked people ("Field Marshal Erwin Rommel") and, given `known`, bare known names."""
    gazetteer = gazetteer or load_gazetteer()
    found = []
    for match in gazetteer.rank_pattern.finditer(sentence):
        end = _name_end(sentence, match.end(), gazetteer)
        if end is not None:
            found.append(Entity("person", sentence[match.start() : end], match.start(), end, "ranked"))
    if known is not None and known.pattern is not None:
        for match in known.pattern.finditer(sentence):
            if _plausible_bare_name(sentence, match.start(), match.end(), known):
                found.append(Entity("person", match.group(), match.start(), match.end(), "bare"))
    return non_overlapping(found)


# --- other proper names (blanks only) ----------------------------------------------------

_NAME_WORD = r"(?:[A-Z]\.){1,3}(?!\w)|(?:Jr|Sr|St|Mt|No)\.|[A-Z][\w'’-]*"  # "W.", "U.S.", "St.", "Nelson"
NAME_RUN = re.compile(
    rf"(?:{_NAME_WORD})(?:\s+(?:{_NAME_WORD}|\d+(?:,\d{3})*(?!\w)|(?:of|von|van|der|de|du|la|an|am)(?=\s+[A-Z])))*"
)
MONTHS = frozenset(re.findall(r"[A-Z][a-z]+", MONTH))


def find_proper_names(
    sentence: str, is_proper: Callable[[str], bool], demonyms: frozenset[str], taken: Iterable[Entity]
) -> list[Entity]:
    """Runs of capitalised words the kinds above do not cover ("Donald M. Nelson", "USS
    Arizona", "Hitokappu Bay", "Executive Order 9066", "No. 303 Squadron"), as kind "name".

    A run must hold two capitalised words or one the corpus treats as proper (`is_proper`: so
    a capitalised "Board" alone is no name), must not start the sentence (a blank never does)
    and must not overlap an entity in `taken`; a leading "The" and a trailing possessive are
    left out, and a run of demonyms or months only ("American", "May") is no name."""
    found = []
    for match in NAME_RUN.finditer(sentence):
        start, text = match.start(), match.group()
        if text.startswith("The "):
            start, text = start + 4, text[4:]
        text = re.sub(r"['’]s$", "", text)
        words = [w.rstrip(".,") for w in text.split()]
        end = start + len(text)
        capitalised = [w for w in words if w[:1].isupper() and len(w) > 1]
        if start == 0 or not (len(capitalised) >= 2 or any(is_proper(w) for w in capitalised)):
            continue
        if all(w in MONTHS or w in FUNCTION_WORDS or w in demonyms for w in words):
            continue
        if any(e.start < end and start < e.end for e in taken):
            continue
        found.append(Entity("name", text, start, end))
    return found


# --- all kinds ---------------------------------------------------------------------------

KIND_PRIORITY = {"date": 0, "unit": 1, "operation": 2, "person": 3, "place": 4, "number": 5}


def non_overlapping(candidates: list[Entity]) -> list[Entity]:
    """Leftmost-longest selection; on equal spans the kind earlier in KIND_PRIORITY wins."""
    chosen: list[Entity] = []
    for entity in sorted(candidates, key=lambda e: (e.start, -(e.end - e.start), KIND_PRIORITY[e.kind])):
        if not chosen or entity.start >= chosen[-1].end:
            chosen.append(entity)
    return chosen


def find_entities(sentence: str, gazetteer: Gazetteer | None = None, known: KnownPeople | None = None) -> list[Entity]:
    """All entities of a sentence, non-overlapping, in order of position."""
    gazetteer = gazetteer or load_gazetteer()
    return non_overlapping(
        [
            *find_dates(sentence),
            *find_units(sentence),
            *find_operations(sentence),
            *find_people(sentence, gazetteer, known),
            *find_places(sentence, gazetteer),
            *find_numbers(sentence),
        ]
    )
