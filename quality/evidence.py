"""What a sentence's words say about its language: the word evidence of the filter stage's
default judge (quality/language.py decides what it means).

`split_sentences` cuts a text into sentences, cheaply and never after an initial or a title.
`sentence_evidence` splits a sentence into words; capitalised words are names (or German
nouns) and are set aside, as are name particles before them ("von Manstein", "de Gaulle",
"El Alamein"), except a function word that starts a sentence before a lower-case word ("Das
ist richtig", not "Das Reich"). Of the rest, the function words of German, French, Spanish,
Italian, Portuguese, Dutch and Polish that English never uses are counted (quality/words.py:
"und", "est", "una", "het", "się", elisions like "l'" and "c'"; never "die", "war", "in",
"is"), and so are English function words ("the", "which", "were"), foreign answer words and
copulas ("Ja.", "Vrai.", "Falso.", "ist"), and the Polish inflected endings ("-ą", "-ę") that
names never have. The words that are not names are the plain view lingua scores: "ordered the
to hold" of "The Führer ordered the Wehrmacht to hold Düsseldorf.". `QUOTED` finds the quoted
phrases a judge may set aside like names ('The motto was "Gott mit uns".').
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from quality.words import (
    ANSWER_WORDS,
    ELISIONS,
    ENGLISH_WORDS,
    FOREIGN_WORDS,
    INFLECTIONS,
    NAME_ARTICLES,
    NAME_PARTICLES,
)

# Words of letters (with inner apostrophes and hyphens); "6th" and "1940s" are not words.
WORD = re.compile(r"(?<!\w)[^\W\d_]+(?:['’\-][^\W\d_]+)*(?!\w)")
# A sentence ends at . ! ? ; or a line break, but not after an initial ("Dwight D.
# Eisenhower") or a title ("Lt. Gen.", "No. 227"): a name cut in two would become two short
# fragments that say nothing about their language.
SENTENCE_END = re.compile(r"[.!?;]+[\"'”’)\]]*\s+|\n+")
NOT_AN_END = re.compile(
    r"(?:\b[A-Za-z]|\b\d{1,2}|\b(?:No|St|Lt|Mt|Dr|Mr|Mrs|Gen|Col|Maj|Capt|Adm|Sgt|Cpl|Pte|Fr|Jr|Sr|vs|Vol|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec))\.$"
)
QUOTE_MARKS = re.compile(r'["“„«‘]')  # what every QUOTED match starts with
QUOTED = re.compile(r'"[^"]+"|“[^”]+”|„[^“”]+[“”]|«[^»]+»|‘[^’]+’')
APOSTROPHE = re.compile(r"['’]")


def split_sentences(text: str) -> list[str]:
    """Cheap sentence split for language judging; pysbd (corpus/sentences.py) is exact but
    about 100x slower, and a missed split here only makes a sentence longer."""
    sentences, start = [], 0
    for match in SENTENCE_END.finditer(text):
        if "\n" not in match.group() and NOT_AN_END.search(text[start : match.start() + 1]):
            continue
        sentences.append(text[start : match.start() + len(match.group().rstrip())])
        start = match.end()
    sentences.append(text[start:])
    return [s.strip() for s in sentences if s.strip()]


@dataclass(frozen=True)
class Evidence:
    """The function words of one sentence, and the words lingua should see."""

    sentence: str  # as written, without quoted phrases
    english: int  # English function words
    foreign: tuple[tuple[str, tuple[str, ...]], ...]  # (word, languages) of each foreign function word
    answer_words: tuple[tuple[str, tuple[str, ...]], ...]  # foreign yes/no/true/false words, copulas
    masked: tuple[str, ...]  # the words that are not names: lower case, or a first function word

    @property
    def plain_view(self) -> str:
        """The words that are not names, as the string lingua scores ("ordered the to hold")."""
        return " ".join(self.masked)

    def word_languages(self) -> dict[str, int]:
        """How many of the foreign words belong to each language ("la": French, Spanish, Italian)."""
        counts: dict[str, int] = {}
        for _, languages in self.foreign + self.answer_words:
            for language in languages:
                counts[language] = counts.get(language, 0) + 1
        return counts

    def foreign_language(self, lingua_values: list) -> str | None:
        """Of the languages the foreign words belong to, the one lingua rates highest on the
        whole sentence; then the most words, the alphabet. One candidate needs no lingua."""
        counts = self.word_languages()
        if not counts:
            return None
        confidence = {v.language.name.title(): v.value for v in lingua_values}
        return min(counts, key=lambda lang: (-confidence.get(lang, 0.0), -counts[lang], lang))


def sentence_evidence(sentence: str, words: list[str] | None = None, lowered: list[str] | None = None) -> Evidence:
    """`words` (WORD.findall of the sentence) and `lowered` (each in lower case), when the
    caller has them already: the default judge's plainly-English check finds them first."""
    if words is None:
        words = WORD.findall(sentence)
    if lowered is None:
        lowered = [word.lower() for word in words]
    in_name = [False] * len(words)  # particles that belong to the name after them
    for i in range(len(words) - 2, -1, -1):
        following = words[i + 1]
        lower = lowered[i]
        particle = lower in NAME_PARTICLES or (lower in NAME_ARTICLES and i > 0 and lowered[i - 1] in NAME_PARTICLES)
        in_name[i] = particle and (following[0].isupper() or in_name[i + 1])
    english, foreign, answers, masked = 0, [], [], []
    for i, (word, lower) in enumerate(zip(words, lowered, strict=True)):
        english += lower in ENGLISH_WORDS
        if lower[-1] in INFLECTIONS and not word.isupper():  # "Dowodził Flotą Pacyfiku."
            answers.append((f"-{lower[-1]} ({word})", INFLECTIONS[lower[-1]]))
        if in_name[i]:
            continue
        # A capitalised word is a name or a German noun, except a function word that starts
        # the sentence ("Das ist richtig", not "Das Reich").
        sentence_start = i == 0 and (i + 1 == len(words) or words[i + 1][0].islower())
        if word[0].isupper() and not sentence_start:
            continue
        if lower in ANSWER_WORDS:
            answers.append((lower, ANSWER_WORDS[lower]))
        elif lower in FOREIGN_WORDS:
            foreign.append((lower, FOREIGN_WORDS[lower]))
        prefix = APOSTROPHE.split(lower, maxsplit=1)[0]
        if prefix != lower and prefix in ELISIONS:  # l'armée, c'est, dell'Unione
            foreign.append((prefix + "'", ELISIONS[prefix]))
        if word[0].islower() or lower in ENGLISH_WORDS or lower in FOREIGN_WORDS or lower in ANSWER_WORDS:
            masked.append(word)
    return Evidence(sentence, english, tuple(foreign), tuple(answers), tuple(masked))
