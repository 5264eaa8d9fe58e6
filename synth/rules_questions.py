"""Turn a sentence and one of its entities into a wh-question whose answer is that entity.

Only simple declarative sentences are used: an optional leading adverbial ("On 22 June 1941,"),
a subject, and a main verb found in a table of past-tense forms (so the question can take
do-support: "sank" -> "When did ... sink?"), or was/were. The answer must be the subject
("Who commanded the 6th Army?"), the object right after the verb ("How many carriers did the
Japanese lose?"), or a time/place adverbial of the main clause ("When did ...?"). Anything
more tangled (relative clauses, commas between the verb and the target, a modal verb) yields
None: fewer questions, but each one grammatical and answered by the sentence.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from synth.context_refs import outside_reference
from synth.english import (
    BETWEEN_STOP,
    DETERMINERS,
    FUNCTION_WORDS,
    INTRO_OPENERS,
    LOWER_FIRST,
    PARTICIPLE_ONLY,
    PAST_TO_BASE,
    PREPOSITIONS,
    PRONOUNS,
    PRONOUNS_LOWER,
    SUBJECT_STOP,
    VERB_FOLLOWERS,
    word_set,
)
from synth.entities import Entity, find_dates

# Where the rest of a predicate is cut: punctuation, a subordinate clause, or an "and" that
# starts a new phrase or clause (but not "a long and costly battle", "Boundary and Friendship").
CUT = re.compile(
    r",(?!\d{3})|;|:(?!\d)| (?:when|which|who|whom|whose|because|as|after|before|until|while|although|though|whereas"
    r"|where|but) | (?:and|or) (?=(?:"
    + "|".join(sorted(DETERMINERS | PREPOSITIONS | {"he", "she", "they", "it", "we"}))
    + r")\b|\d|[a-z]+ed\b|(?:"
    + "|".join(sorted(PAST_TO_BASE))
    + r")\b)"
)
DATE_PREP = re.compile(
    r"(?:\b(?:[Ee]arly|[Ll]ate)\s+)?\b(?P<prep>[Oo]n|[Ii]n|[Dd]uring|[Ff]rom|[Bb]etween)\s+(?:the\s+(?:early\s+|late\s+)?(?:morning|afternoon|evening"
    r"|night|spring|summer|autumn|fall|winter|end|beginning|middle|start)\s+of\s+)?(?:(?:early|late|mid)[\s-])?$"
)
ACTION_NOUNS = word_set(
    "advance assault attack attacks bombing campaign drive invasion landing landings march offensive raid "
    "raids strike strikes thrust war"
)
ON_PLACES = frozenset({"island", "island_the", "beach", "region_the", "sea_the"})
PLACE_PREP = re.compile(r"\b(?:[Ii]n|[Aa]t|[Nn]ear|[Oo]n|[Oo]ff|[Oo]ver|[Oo]utside)\s+(?:the\s+)?$")
QUALIFIER = re.compile(
    r"\b(?:about|some|roughly|approximately|approx\.|c\.|nearly|almost|around|over|more than|fewer than"
    r"|less than|at least|up to|only|just|an estimated)\s+$",
    re.IGNORECASE,
)
PLACE_FOLLOWERS = word_set(
    "in on at by with from to for during after before until when where while as under near against toward "
    "towards into over which that who through across along than"
)
# Words a question cannot end on: it was cut inside a phrase ("in what became", "the first
# controlled", "a second").
DANGLING_END = word_set(
    "became become was were is are had has been being what which that whose first last second third "
    "new other same such more most less very than"
)
ORDINALS = word_set("first second third fourth fifth last final next")
# What may follow a place answer in the question: nothing, or a time adjunct. "linked the forces
# [in Pomerania] with those in East Prussia" shows the place belonged to a noun, not the verb.
AFTER_PLACE = re.compile(r"\s*$|\s+(?:on|in|during|from|by|until|after|before|early|late|between)\b")
TOKEN = re.compile(r"(?:[^\s,;:]|,(?=\d{3})|:(?=\d))+|[,;:]")


@dataclass(frozen=True)
class Clause:
    sentence: str
    intros: tuple[tuple[int, int], ...]  # leading adverbials, each without its comma
    subject: tuple[int, int]  # appositive excluded
    verb: tuple[int, int]
    base: str | None  # base form for do-support; None for was/were
    end: int  # end of the body, before the final full stop


@dataclass(frozen=True)
class WhQuestion:
    body: str  # the question, without any context prefix: "When did Yorktown sink?"
    answer: str  # the short answer, "On 7 June 1942." (qa replies answer with the whole sentence)
    target: Entity


def usable(sentence: str) -> bool:
    """A plain declarative sentence that makes sense on its own (no leading pronoun)."""
    words = sentence.split()
    return (
        6 <= len(words) <= 50
        and sentence.endswith(".")
        and words[0] not in PRONOUNS
        and "_" not in sentence
        and sentence.count('"') % 2 == 0
        and sentence.count("“") == sentence.count("”")
        and "(" not in sentence
    )


def _intros(sentence: str, entities: tuple[Entity, ...]) -> list[tuple[int, int]]:
    """Leading adverbials: a date phrase ("On 6 June 1944") or comma-ended phrases that start
    with an opener ("Two months later, in Aug. 1942,"); at most two."""
    spans, pos = [], 0
    while len(spans) < 2:
        rest = sentence[pos:]
        date = next((e for e in entities if e.kind == "date" and e.start >= pos), None)
        if date and (m := DATE_PREP.search(sentence, pos, date.start)) and m.start() == pos:
            end = date.end
        elif rest.split(maxsplit=1)[0].lower().strip(",") in INTRO_OPENERS and "," in rest[:160]:
            end = pos + rest.index(",")
        else:
            break
        if len(sentence[pos:end].split()) > 16:
            break
        spans.append((pos, end))
        pos = end + 1 if sentence[end : end + 1] == "," else end
        pos += len(sentence[pos:]) - len(sentence[pos:].lstrip())
    return spans


def parse_clause(sentence: str, entities: tuple[Entity, ...]) -> Clause | None:
    """Split a usable sentence into intro(s), subject and main verb, or None."""
    if not usable(sentence) or ";" in sentence:
        return None
    intros = _intros(sentence, entities)
    start = intros[-1][1] if intros else 0
    if intros and sentence[start] != ",":
        following = sentence[start:].split(maxsplit=1)[0]
        if following.islower() and following not in DETERMINERS:
            return None  # "In 1942 alone Soviet industry ...": the intro goes on past the date
    while start < len(sentence) and sentence[start] in ", ":
        start += 1
    tokens = [(m.group(), m.start(), m.end()) for m in TOKEN.finditer(sentence, start, len(sentence) - 1)]
    subject_end, i = None, 0
    while i < len(tokens):
        text, begin, end = tokens[i]
        if text == ",":  # one appositive: "Adm. Isoroku Yamamoto, commander of the Combined Fleet, proposed"
            close = next((j for j in range(i + 1, min(i + 14, len(tokens))) if tokens[j][0] == ","), None)
            if subject_end is not None or close is None or i == 0:
                return None
            if any(t[0] in PAST_TO_BASE or t[0] in ("was", "were") for t in tokens[i + 1 : close]):
                return None
            after = tokens[close + 1][0] if close + 1 < len(tokens) else ""
            if not (after in ("was", "were") or (after in PAST_TO_BASE and after not in PARTICIPLE_ONLY)):
                return None  # the commas closed a list, not an appositive
            subject_end, i = begin, close + 1
            continue
        following = tokens[i + 1][0] if i + 1 < len(tokens) else ""
        opens_phrase = text.lower() in PREPOSITIONS and not following[:1].isdigit()  # not "About 300,000 men"
        if text in SUBJECT_STOP or (i == 0 and (opens_phrase or text in PRONOUNS_LOWER)):
            return None
        if text.endswith("ed") and text.islower() and text not in PAST_TO_BASE and following in VERB_FOLLOWERS:
            return None  # a main verb missing from the table: the real subject ended earlier
        adjective = i > 0 and tokens[i - 1][0].lower() in DETERMINERS  # "The failed raid"
        if text in ("was", "were") or (
            text in PAST_TO_BASE and following != "by" and text not in PARTICIPLE_ONLY and not adjective
        ):
            stop = subject_end if subject_end is not None else tokens[i - 1][2] if i else start
            if i == 0 or not 1 <= len(sentence[start:stop].split()) <= 12:
                return None
            base = None if text in ("was", "were") else PAST_TO_BASE[text]
            return Clause(sentence, tuple(intros), (start, stop), (begin, end), base, len(sentence) - 1)
        i += 1
    return None


def lower_first(text: str, is_proper: Callable[[str], bool]) -> str:
    """Lower-case a moved sentence start unless it is a name ("The Allies" -> "the Allies",
    "Production of" -> "production of", "Yorktown" and "Anti-Aircraft Command" unchanged)."""
    words = text.split()
    if not words or words[0][1:2].isupper():
        return text
    function_word = words[0] in LOWER_FIRST or words[0] in FUNCTION_WORDS
    in_name = len(words) > 1 and words[1][:1].isupper()
    if function_word or (not is_proper(words[0]) and not in_name):
        return text[0].lower() + text[1:]
    return text


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,?])", r"\1", text)
    return re.sub(r",\s*\?", "?", text)


def _moved_intros(clause: Clause, skip: tuple[int, int] | None, is_proper: Callable[[str], bool]) -> str:
    parts = [clause.sentence[a:b] for a, b in clause.intros if (a, b) != skip]
    return " ".join(lower_first(p, is_proper) for p in parts)


def _between_ok(text: str) -> str | None:
    """The words between the main verb and an adverbial target: no clause boundary, and a
    second past verb only when coordinated ("rolled over and sank" -> "roll over and sink")."""
    if re.search(r",(?!\d{3})|;|:(?!\d)", text):
        return None
    words = text.split()
    out = []
    for i, word in enumerate(words):
        following = words[i + 1] if i + 1 < len(words) else ""
        infinitive = word == "to" and following.islower() and following not in DETERMINERS
        if word in BETWEEN_STOP or infinitive:
            return None  # a subordinate or infinitive clause: the target may belong to it
        if word in ("and", "or") and following not in PAST_TO_BASE:
            return None  # coordinated nouns or clauses: the target may belong to the second
        if word in PAST_TO_BASE and i > 0:
            if words[i - 1] not in ("and", "or"):
                return None
            word = PAST_TO_BASE[word]
        out.append(word)
    return " ".join(out)


def _rest(text: str) -> str | None:
    """What follows the target in the predicate, cut at a clause boundary; None when the cut
    would strand a preposition ("the first in [which ...]") or the noun phrase goes on ("of")."""
    if re.match(r"\s+(?:and|or)\s", text):
        return ""  # "moved 1,500 factories [and millions of workers]": the rest is another object
    rest = CUT.split(text, maxsplit=1)[0].rstrip()
    while rest.split() and rest.split()[-1] in PARTICIPLE_ONLY:  # "a small hill known [as Sugar Loaf]"
        rest = rest[: rest.rstrip().rindex(" ")]
    words = rest.split()
    if words and (words[-1] in PREPOSITIONS | DETERMINERS or words[0] == "of"):
        return None
    if rest != text.rstrip() and re.search(r"\bthat\s+\S+$", rest):
        return None  # "told the House that [never ...]": the cut fell inside a reported clause
    return rest


def clipped(question: str) -> bool:
    """The question ends inside a phrase: on a function word or verb ("in what became?"), or on
    a modifier whose noun was cut away ("the first controlled?")."""
    words = question.rstrip("?").split()
    if not words:
        return True
    last, before = words[-1], words[-2].lower() if len(words) > 1 else ""
    if last in DANGLING_END or last in PREPOSITIONS or last in DETERMINERS:
        return True
    modifier = last.endswith(("ed", "ing")) or last in ORDINALS
    return modifier and (before in DETERMINERS or before in ORDINALS) and before not in ("all", "both", "each")


def target_phrase(sentence: str, target: Entity) -> tuple[int, int] | None:
    """The span a question replaces: the entity plus its preposition (dates, places),
    qualifier and counted noun (numbers) or article (units)."""
    before = sentence[: target.start]
    if sentence[target.end :].startswith(("'s", "’s")):
        return None  # a possessive ("Rommel's division") is not what the question asks for
    if target.kind == "date":
        match = DATE_PREP.search(before)
        if not match or (match.group("prep").lower() in ("from", "between")) != (target.detail == "range"):
            return None
        return match.start(), target.end
    if target.kind == "place":
        match = PLACE_PREP.search(before)
        if match and match.group().split()[0].lower() in ("on", "off") and target.detail not in ON_PLACES:
            return None  # "war on Japan", "a raid on Dieppe": "on" is locative only for islands, coasts
        if match and before[: match.start()].split()[-1:] in ([w] for w in ACTION_NOUNS):
            return None  # "a second strike on Midway": the place belongs to the noun, not the verb
        after = sentence[target.end :]
        next_word = after.split(maxsplit=1)[0].lower() if after.strip() else ""
        if not match or (after[:1] == " " and next_word not in PLACE_FOLLOWERS):
            return None
        return match.start(), target.end
    if target.kind == "number":
        if not target.detail or sentence[target.end : target.end + 1 + len(target.detail)] != " " + target.detail:
            return None
        match = QUALIFIER.search(before)
        return (match.start() if match else target.start), target.end + 1 + len(target.detail)
    if target.kind == "unit" and before.endswith(("the ", "The ")):
        return target.start - 4, target.end
    return target.start, target.end


def wh_word(target: Entity) -> str:
    if target.kind == "person":
        return "Who"
    if target.kind == "date":
        return "When"
    if target.kind == "place":
        return "Where"
    if target.kind == "number":
        return f"How many {target.detail}"
    return f"Which {'operation' if target.kind == 'operation' else target.detail}"


def wh_question(clause: Clause, target: Entity, is_proper: Callable[[str], bool]) -> WhQuestion | None:
    """The question that `target` answers in `clause`, or None. Three shapes:
    subject ("Who commanded ...?"), object after the verb ("How many carriers did ... lose?"),
    and a time/place adverbial of the main verb or a leading one ("When did ... sink?")."""
    s = clause.sentence
    span = target_phrase(s, target)
    if span is None:
        return None
    subject = lower_first(s[clause.subject[0] : clause.subject[1]], is_proper)
    verb, after_verb = s[clause.verb[0] : clause.verb[1]], clause.verb[1]
    aux = f"did {subject} {clause.base}" if clause.base else f"{verb} {subject}"
    adverbial = target.kind in ("date", "place")
    intros = _moved_intros(clause, None, is_proper)
    if not adverbial and span == clause.subject:  # subject question: no inversion
        rest = _rest(s[after_verb : clause.end])
        body = None if rest is None else f"{wh_word(target)} {verb}{rest} {intros}?"
    elif not adverbial and clause.base and span[0] >= after_verb and not s[after_verb : span[0]].strip():
        rest = _rest(s[span[1] : clause.end])  # the object right after the verb
        if rest and rest.split()[0] in PAST_TO_BASE:
            rest = ""  # "tanks [organized into four groups]": a participle of the object, not asked
        body = None if rest is None else f"{wh_word(target)} {aux}{rest} {intros}?"
    elif adverbial and span in clause.intros:
        rest = _rest(s[after_verb : clause.end])
        body = None if rest is None else f"{wh_word(target)} {aux}{rest} {_moved_intros(clause, span, is_proper)}?"
    elif adverbial and span[0] > after_verb:
        between, rest = _between_ok(s[after_verb : span[0]]), _rest(s[span[1] : clause.end])
        if rest and rest.split()[0] in PAST_TO_BASE:
            return None  # "A directive issued [in 1941] declared ...": the verb was a participle
        too_far = target.kind == "place" and between is not None and len(between.split()) > 10
        noun_place = target.kind == "place" and rest is not None and not AFTER_PLACE.match(rest)
        # "was a major clash [in Eastern Europe]": after was/were a noun phrase, not the verb, owns the place
        noun_place = noun_place or (
            clause.base is None and between is not None and between.split()[:1] in [["a"], ["an"], ["the"]]
        )
        if between is None or rest is None or too_far or noun_place or (clause.base is None and not between):
            return None
        body = f"{wh_word(target)} {aux} {between}{rest} {intros}?"
    else:
        return None
    if body is None:
        return None
    body = _tidy(body)
    if target.text.lower() in body.lower() or len(body.split()) < 4 or clipped(body):
        return None
    if outside_reference(body, question=True):
        return None
    if body.count('"') % 2 or body.count("“") != body.count("”"):
        return None  # a cut through a quotation
    if target.kind == "date" and find_dates(body):
        return None  # "When did unemployment fall ... to 1.2 percent in 1944?": which date is asked?
    answer = s[span[0]].upper() + s[span[0] + 1 : span[1]] + "."
    return WhQuestion(body, answer, target)
