"""References that point outside a sentence: a question, statement or blank that keeps one
cannot be understood on its own ("Hitler adopted this concept", "two days later", "Instead,
it brought ...", "the best known took place at ...").

`outside_reference(text, question=...)` returns the offending phrase, or None. Questions are
stricter about pronouns: "When did Hitler dismiss him?" asks about someone the reader never
met, while a statement's "Nimitz married ..., and they had four children" is fine because the
name comes first.
"""

from __future__ import annotations

import re

from synth.english import FUNCTION_WORDS, MONTHS

# Time and discourse links to the previous sentence, demonstratives, and nouns that refer back.
LINKED = re.compile(
    r"\b(?:\w+ (?:days?|weeks?|months?|years?) (?:later|earlier)|(?:the )?next day|the following \w+"
    r"|that (?:day|month|year|night|morning|evening|same)|the same (?:day|month|year|night)|later that \w+"
    r"|meanwhile|(?:this|these|those|such)(?: an?)? [a-z]\w*|(?:in|at|on|of|from|by|to|during|after|before|with)"
    r" that [a-z]\w*|the (?:latter|former|best[- ]known|answer|result|move|decision|remainder|rest|others?)\b"
    r"|then|thereafter|afterwards|nevertheless|nonetheless|as a result|in response|in turn|in addition"
    r"|there(?! (?:was|were|is|are|had|have|would|could)\b))\b",
    re.IGNORECASE,
)
OPENER = re.compile(r"^(?:Instead|Also|Thus|Therefore|Still|Again|Later|Even so|Here|There,|However|By then)\b")
# Pronouns that need an antecedent; objects ("him", "them") point outside even after a name.
OBJECT_PRONOUNS = re.compile(r"\b(?:him|them)\b", re.IGNORECASE)
PRONOUNS = re.compile(r"\b(?:he|she|it|they|his|her|its|their)\b", re.IGNORECASE)
NAME = re.compile(r"\b[A-Z][\w'’.-]*")


PERSONAL = frozenset({"he", "she", "his", "her"})


def _antecedent_before(text: str, position: int, people: tuple[tuple[int, int], ...] | None, personal: bool) -> bool:
    """A possible antecedent before `position`. When the caller knows where people are named
    (`people`: their spans), he/she/his/her need a person and it/its/they/their a name that
    is not one ("Paulus did not attempt a breakout to meet it": "it" is not Paulus); else
    any capitalised word that is not a function word ("The", "In") nor a month."""
    if personal and people is not None:
        return any(start < position for start, _ in people)
    in_person = (lambda i: any(a <= i < b for a, b in people)) if people else (lambda i: False)
    return any(
        m.group() not in FUNCTION_WORDS | MONTHS and not in_person(m.start()) for m in NAME.finditer(text, 0, position)
    )


def outside_reference(
    text: str, question: bool = False, people: tuple[tuple[int, int], ...] | None = None
) -> str | None:
    """The phrase that needs context from another sentence, or None. `people`, the spans
    where persons are named, lets "After the fall of France, he ..." be caught: France is no "he"."""
    for pattern in (OPENER, LINKED, OBJECT_PRONOUNS):
        if match := pattern.search(text):
            return match.group()
    for match in PRONOUNS.finditer(text):
        # a question's wh-word is the antecedent of its possessive ("Who ... his view?")
        possessive_of_wh = question and match.group().lower() in ("his", "her", "their") and text.startswith("Who")
        if question and not possessive_of_wh:
            return match.group()
        personal = match.group().lower() in PERSONAL
        if not question and not _antecedent_before(text, match.start(), people, personal):
            return match.group()
    return None
