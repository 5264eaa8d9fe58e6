"""Is this text English? The two rules of the filter stage, each judging many texts per call.

`SeedJudge` (`filter.mode: seed`) is the seed project's rule, kept for comparison: lingua
built for English and Chinese only must give English a confidence of exactly 1.0, and no
character may lie in U+4E00–U+9FFF. With two languages loaded any Latin-script text is
"English" (German and French score 1.0 and pass), a text without letters scores 0.0 ("1944"
is rejected), and kana, hangul or CJK extension ideographs are not looked for.

`DefaultJudge` (`filter.mode: default`) asks three questions, cheapest first, and names the
reason of every rejection:
1. Script (quality/scripts.py, check "script:<Script>"): an allow-list of Latin letters with
   any diacritic, combining marks and Common punctuation, digits and symbols. Han (and its
   extensions), kana, hangul, Cyrillic, Greek, Arabic, Hebrew, Devanagari, Thai... fail, and
   so do fullwidth forms, CJK punctuation and homoglyphs (a Cyrillic "а" in "Stalingrad").
2. Words, per sentence (quality/evidence.py, check "language:<Language>"): with names and
   name particles set aside, the foreign function words of each sentence that English never
   uses are counted, and so are its English function words. Two foreign ones, more than the
   English ones, fail the sentence; so does a single foreign answer word or copula ("Ja.",
   "Vrai.", "Falso.", "ist") with no English function word, or a Polish inflected ending
   ("-ą", "-ę") that names never have.
3. lingua, per sentence with fewer than `english_override` English function words and at
   least one word left after the names are set aside. Lingua alone is wrong on English full
   of names: "The Führer ordered the Wehrmacht to hold Düsseldorf." is German 0.88, "Who was
   Władysław Sikorski?" is Polish 0.99, "Yes." is Tsonga. So lingua scores each sentence twice,
   as written and as its plain words only ("ordered the to hold"), and the sentence fails
   when either view prefers another language over English by `min_margin` while the plain
   view does not prefer English (a tie within 0.01 counts as English). The plain view is
   scored first, and the sentence as written only when that view is neither English nor a
   tie. A plain view of fewer than `masked_min_words` words is too short to reject on its
   own ("squadron hit" is Italian) and may only veto.
Short answers (a name, a year, "Yes.", "True", "Operation Barbarossa") pass: they have no
foreign words, and their plain view is empty or English. A quoted phrase inside a sentence of
three or more words is set aside like a name ('The motto was "Gott mit uns".'); a bare foreign
phrase as the whole answer ("Gott mit uns") cannot be told from a drifting model and fails.

The sentences of a whole batch of texts that need lingua go to it in two calls of its
parallel API: the plain views, then the sentences they leave open. Every failure is a
Verdict(check, detail); the detail names the character, the words or the scores that decided
it.

A verdict is a pure function of the text (given the judge's params), and generated records
repeat texts: the same article sentence answers several prompt types, a question stem recurs
per type. So a judge judges each distinct text of a batch once, keeps the verdicts of its
last `memo_size` distinct texts for later batches (quality/memo.py; 0: every text judged as
it comes), sends each distinct string (a sentence, a plain view) to lingua once and keeps
the scores of a quarter as many, and remembers per sentence what its words say. A sentence
with `english_override` English function words and no word any foreign check looks at is
plainly English and skips the rest (most generated sentences); a sentence rejected by words
of one language needs no lingua to name it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from lingua import Language, LanguageDetector, LanguageDetectorBuilder

from quality.evidence import QUOTE_MARKS, QUOTED, WORD, Evidence, sentence_evidence, split_sentences
from quality.memo import Memo
from quality.scripts import first_foreign_char
from quality.words import ANSWER_WORDS, ENGLISH_WORDS, FOREIGN_WORDS, INFLECTIONS

HAN_SEED = re.compile(r"[\u4e00-\u9fff]")
FOREIGN_OR_ANSWER = frozenset(FOREIGN_WORDS) | frozenset(ANSWER_WORDS)
# Distinct texts (and sentences) whose verdicts a judge keeps across batches. Full, that is
# some 50 MB per judge (texts of a sentence or two, lingua scores ~1 KB a string); the whole
# default generate output (10,272 records, 16,478 distinct texts) keeps 7 MB.
MEMO_SIZE = 1 << 16


@dataclass(frozen=True)
class Verdict:
    """Why a text fails: check "script:Han" / "language:German" / "seed:...", detail for humans."""

    check: str
    detail: str


@functools.lru_cache(maxsize=4)
def build_detector(languages: tuple[str, ...]) -> LanguageDetector:
    """One lingua detector per language set and process: building and loading the models
    costs seconds and hundreds of MB, so stages, tests and the bench share this cache."""
    chosen = [Language.from_str(name) for name in languages]
    return LanguageDetectorBuilder.from_languages(*chosen).with_preloaded_language_models().build()


class SeedJudge:
    """The seed's rule: English confidence exactly `min_confidence` and no U+4E00–U+9FFF."""

    def __init__(self, min_confidence: float = 1.0, memo_size: int = MEMO_SIZE):
        self.min_confidence = min_confidence
        self.detector = build_detector(("ENGLISH", "CHINESE"))
        self.memo: Memo[Verdict | None] = Memo(memo_size)

    def judge(self, texts: Sequence[str], parallel: bool = True) -> list[Verdict | None]:
        """Verdicts in input order; each distinct text judged once (and remembered)."""
        return self.memo.each_once(texts, lambda todo: self._judge(todo, parallel))

    def _judge(self, texts: Sequence[str], parallel: bool) -> list[Verdict | None]:
        verdicts: list[Verdict | None] = [None] * len(texts)
        todo = []
        for i, text in enumerate(texts):
            match = HAN_SEED.search(text)
            if match:
                verdicts[i] = Verdict(
                    "seed:han", f"U+{ord(match.group()):04X} {match.group()!r} at char {match.start()}"
                )
            else:
                todo.append(i)
        batch = [texts[i] for i in todo]
        if parallel:
            scores = self.detector.compute_language_confidence_in_parallel(batch, Language.ENGLISH)
        else:
            scores = [self.detector.compute_language_confidence(t, Language.ENGLISH) for t in batch]
        for i, score in zip(todo, scores, strict=True):
            if score < self.min_confidence:
                verdicts[i] = Verdict("seed:english_confidence", f"english={score:.4f} < {self.min_confidence}")
        return verdicts


class DefaultJudge:
    """Script, then function words, then lingua (see the module docstring)."""

    def __init__(
        self,
        languages: Sequence[str],
        min_margin: float,
        masked_min_words: int,
        english_override: int,
        memo_size: int = MEMO_SIZE,
    ):
        if "ENGLISH" not in languages:
            raise ValueError("filter.languages must include ENGLISH")
        self.detector = build_detector(tuple(languages))
        self.min_margin = min_margin
        self.masked_min_words = masked_min_words
        self.english_override = english_override
        self.memo: Memo[Verdict | None] = Memo(memo_size)
        # lingua's 18 scores of a string take about 1 KB: a quarter as many are kept.
        self.scores_memo: Memo[list] = Memo(memo_size // 4)
        # A sentence recurs inside distinct texts ("True. The number is right: 120,000."); what
        # its words say depends on nothing else.
        self._words_of = functools.lru_cache(maxsize=memo_size)(self._words) if memo_size else self._words

    def judge(self, texts: Sequence[str], parallel: bool = True) -> list[Verdict | None]:
        """Verdicts in input order; each distinct text judged once (and remembered), and every
        distinct sentence or view that needs lingua goes to it once, in one batch."""
        return self.memo.each_once(texts, lambda todo: self._judge(todo, parallel))

    def _judge(self, texts: Sequence[str], parallel: bool) -> list[Verdict | None]:
        verdicts: list[Verdict | None] = [None] * len(texts)
        pending: list[tuple[int, Evidence]] = []  # sentences waiting for lingua
        worded: dict[int, tuple[Evidence, str]] = {}  # texts rejected by a sentence's words
        for i, text in enumerate(texts):
            found = first_foreign_char(text)
            if found:
                script, position, char = found
                verdicts[i] = Verdict(f"script:{script}", f"U+{ord(char):04X} {char!r} at char {position}")
                continue
            # A quoted phrase in an English sentence is a name or a citation ('The motto was
            # "Gott mit uns".'): set aside like a name when the sentence around it has words
            # enough to judge ('Paulus. "Er kapitulierte."' is judged whole).
            unquoted = QUOTED.sub(" ", text) if QUOTE_MARKS.search(text) else text
            quotes_aside = unquoted != text and len(WORD.findall(unquoted)) >= self.masked_min_words
            for sentence in split_sentences(unquoted if quotes_aside else text):
                judged = self._words_of(sentence)
                if judged is None:
                    continue
                evidence, reason = judged
                if reason:
                    worded[i] = (evidence, reason)
                    break
                if evidence.masked and evidence.english < self.english_override:
                    pending.append((i, evidence))
        pending = [(i, ev) for i, ev in pending if i not in worded]
        # The view without names first: when lingua finds it English (most sentences) the
        # sentence passes whatever the sentence as written scores, so only the others are
        # scored as written too. Sentences already rejected by their words go in the first
        # call only to name the language, when their words belong to more than one.
        naming = [ev.sentence for ev, _ in worded.values() if len(ev.word_languages()) > 1]
        scores = self._scores([ev.plain_view for _, ev in pending] + naming, parallel)
        unsettled = [(i, ev) for i, ev in pending if not _english_or_tie(scores[ev.plain_view])]
        scores.update(self._scores([ev.sentence for _, ev in unsettled if ev.sentence not in scores], parallel))
        for i, evidence in unsettled:
            if verdicts[i] is None:
                verdicts[i] = self._by_lingua(evidence, scores[evidence.sentence], scores[evidence.plain_view])
        for i, (evidence, reason) in worded.items():
            values = scores[evidence.sentence] if len(evidence.word_languages()) > 1 else []
            verdicts[i] = Verdict(f"language:{evidence.foreign_language(values)}", reason)
        return verdicts

    def _scores(self, batch: list[str], parallel: bool) -> dict[str, list]:
        """lingua's confidence values of each distinct string (a masked view is often the
        sentence itself, and sentences recur across texts and batches)."""
        distinct = list(dict.fromkeys(batch))
        values = self.scores_memo.each_once(distinct, lambda todo: self._lingua(todo, parallel))
        return dict(zip(distinct, values, strict=True))

    def _lingua(self, strings: list[str], parallel: bool) -> list[list]:
        if parallel:
            return self.detector.compute_language_confidence_values_in_parallel(strings)
        return [self.detector.compute_language_confidence_values(text) for text in strings]

    def _words(self, sentence: str) -> tuple[Evidence, str | None] | None:
        """None when the sentence is plainly English: `english_override` English function words
        and no word any foreign check looks at (most generated sentences), so neither the words
        nor lingua can reject it; else its evidence and the words' reason to reject, or None."""
        words = WORD.findall(sentence)  # found once: sentence_evidence needs them too
        lowered = [word.lower() for word in words]
        lower_sentence = sentence.lower()
        if "'" not in sentence and "’" not in sentence and not any(c in lower_sentence for c in INFLECTIONS):
            english = sum(map(ENGLISH_WORDS.__contains__, lowered))
            if english >= self.english_override and FOREIGN_OR_ANSWER.isdisjoint(lowered):
                return None
        evidence = sentence_evidence(sentence, words, lowered)
        return evidence, self._by_words(evidence)

    def _by_words(self, evidence: Evidence) -> str | None:
        """Why the words alone reject the sentence, or None."""
        foreign = evidence.foreign + evidence.answer_words
        words = ", ".join(word for word, _ in foreign)
        if evidence.answer_words and evidence.english == 0:
            return f"foreign answer word: {words}"
        if len(foreign) >= 2 and len(foreign) > evidence.english:
            return f"foreign function words: {words}; English ones: {evidence.english}"
        return None

    def _by_lingua(self, evidence: Evidence, full: list, masked: list) -> Verdict | None:
        """Reject when lingua prefers another language by `min_margin`, on the sentence as
        written or on its words without the names, and the view without names does not
        prefer English (names alone make lingua call "Who was Władysław Sikorski?" Polish)."""
        if _english_or_tie(masked):
            return None  # the words without names are English, or tie with it ("but")
        margins = [(_margin(view), view[0].language) for view in (full, masked)]
        # One or two words without names are too little for lingua to judge on their own
        # ("squadron hit" is Italian +0.18); they may only veto a rejection (above).
        usable = margins if len(evidence.masked) >= self.masked_min_words else margins[:1]
        margin, language = max(usable, key=lambda m: m[0])
        if margin < self.min_margin or language == Language.ENGLISH:
            return None
        name = evidence.foreign_language(full) or language.name.title()
        (full_margin, full_top), (masked_margin, masked_top) = margins
        return Verdict(
            f"language:{name}",
            f"lingua: as written {full_top.name.title()} +{full_margin:.2f} over English, "
            f"without names {masked_top.name.title()} +{masked_margin:.2f} on {evidence.plain_view!r}",
        )


TIE = 0.01  # lingua scores this close to English's are a tie, not a preference


def _english_or_tie(values: list) -> bool:
    return values[0].language == Language.ENGLISH or _margin(values) < TIE


def _margin(values: list) -> float:
    """How far lingua's favourite language is ahead of English (0.0 when it is English)."""
    english = next(v.value for v in values if v.language == Language.ENGLISH)
    return values[0].value - english
