"""Judges for the `evaluate` stage: grade a student answer against the reference, PASS or FAIL.

- `HeuristicJudge` (offline default) reads no model. It normalises both texts (lower case, no
  punctuation, numbers in one canonical form, stop words dropped, plural/possessive folded) and
  measures *recall*: the share of the reference's content tokens that the question does not
  already hold ("Paulus." answers "Who commanded the 6th Army?") found in the answer. Recall, not
  F1, because references are short and students ramble; a rambling answer is instead caught by
  the hard checks, which decide before overlap does (first failure wins, named in `details`):
    empty_answer    nothing to grade
    true_false      "True or false" items: the answer's leading True/False must be the
                    reference's label, and nothing else is checked; yes/no likewise
    choice          "X or Y?" and A-E questions: the answer must name the reference's whole
                    option and no other (or its letter, for A-E): evaluation/choice.py
    years           every year of the reference (not already in the question) is in the answer
    numbers         every other number of the reference likewise ("1,500" = "1500", "1.5 million")
    names           every multi-word or titled name of the reference: its last word (surname)
                    or an alias ("USSR" for "Soviet Union")
    negation        the reference negates ("No unit broke out"), the answer negates nothing
    foreign_years   the reference has a year, the answer offers another (a hedge or a wrong date)
    foreign_numbers the answer offers a number >= 100 within 10x of a reference number but not it
    overlap         recall >= min_overlap (0.5: half the reference's new content words)
  Choice answers are decided by the option plus the foreign checks, true/false by the label
  alone: "False." is a full answer. Facts already in the question are never required of the answer.
  The regexes below are tuned for grading (a number "1.5 million" equals "1,500,000", a
  surname matches a full name), which is why they are not synth/entities.py's extractors.
- `LLMJudge` (evaluation/judge_llm.py) asks a chat model; `summarise` counts both kinds of verdict
  so that UNPARSED and ERROR are never passes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from evaluation.choice import LETTER, choice_problem, correct_index, question_options

VERDICTS = ("PASS", "FAIL", "UNPARSED", "ERROR")


@dataclass(frozen=True)
class Verdict:
    verdict: str  # PASS | FAIL | UNPARSED (llm reply without a readable verdict) | ERROR (not graded)
    explanation: str  # which check decided (heuristic) or the grader's reasoning (llm)
    score: float | None = None  # heuristic: token recall; llm: None
    details: dict = field(default_factory=dict)


# --- normalisation ----------------------------------------------------------------------


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Negations are kept as content: "did not surrender" must not match "surrendered".
STOP_WORDS = _word_set(
    "a an the and or but if of at by for with from to in on onto into over under about around "
    "approximately roughly nearly some is are was were be been being has have had do does did it "
    "its this that these those he she they them his her their him we you i as so than then there "
    "which who whom whose what when where why how also only just after before during while"
)
# "n't" survives as a "...nt" word once apostrophes are gone ("didnt", "wasnt").
NEGATION_WORDS = _word_set("not no never none nobody nothing neither nor cannot didnt wasnt werent couldnt")
TITLES = _word_set(
    "field marshal general admiral colonel major captain lieutenant commander president prime "
    "minister chancellor king queen emperor sir lord dr mr mrs generalfeldmarschall fuhrer führer "
    "premier secretary grand air chief vice rear brigadier sergeant gen maj lt col adm capt sgt cdr"
)
MONTHS_DAYS = _word_set(
    "january february march april may june july august september october november december "
    "monday tuesday wednesday thursday friday saturday sunday"
)
UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
UNITS += ["thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
WORD_VALUES = {w: i for i, w in enumerate(UNITS)} | {w: 20 + 10 * i for i, w in enumerate(TENS)} | {"a": 1}
SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}

_SCALE = r"(?:\s+(?:hundred|thousand|million|billion)\b)"
# Longest alternatives first, so "seventeen" is not read as "seven". "one"/"a" only count with a
# scale word: alone they are pronouns and articles.
_WORDS = (
    rf"\b(?:(?:{'|'.join(TENS)})(?:[-\s](?:{'|'.join(UNITS[1:10])}))?|{'|'.join(sorted(UNITS[2:], key=len, reverse=True))}"
    rf"|zero|(?:a|one)(?={_SCALE}))"
)
NUMBER = re.compile(
    rf"(?<![\w.,])(?P<num>\d{{1,3}}(?:,\d{{3}})+(?:\.\d+)?|\d+(?:\.\d+)?|{_WORDS})"
    rf"(?P<suffix>st|nd|rd|th|s)?(?P<scale>{_SCALE}+)?(?!\w)",
    re.IGNORECASE,
)
# A possessive ends a name ("Manstein's Battle…" is two spans); "O'Connor" does not.
_CAP = r"[A-Z](?:[\w-]|['’](?!s\b))+"
NAME = re.compile(rf"{_CAP}(?:\s+(?:(?:von|van|de|der|den|du|la|le|di|da|of(?:\s+the)?)\s+)?{_CAP})+")


def _number_value(match: re.Match) -> Decimal:
    raw = match["num"].lower().replace(",", "")
    words = re.split(r"[-\s]+", raw)
    value = Decimal(raw) if raw[0].isdigit() else Decimal(sum(WORD_VALUES[w] for w in words))
    for scale in (match["scale"] or "").lower().split():
        value *= SCALES[scale]
    return value


def _canonical(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _is_year(match: re.Match, value: Decimal) -> bool:
    plain = match["num"].isdigit() and len(match["num"]) == 4
    return plain and not match["scale"] and match["suffix"] in (None, "s") and 1000 <= value <= 2099


def extract_numbers(text: str) -> tuple[set[int], set[Decimal]]:
    """(years, other numbers) in `text`; "31st" is 31, "1940s" is 1940, "1.5 million" 1500000."""
    years, numbers = set(), set()
    for match in NUMBER.finditer(text):
        value = _number_value(match)
        if _is_year(match, value):
            years.add(int(value))
        else:
            numbers.add(value.normalize())
    return years, numbers


def _fold(word: str) -> str:
    # Plurals only, the cheap way: "armies" -> "army", "tanks" -> "tank"; "Paulus", "loss" stay.
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _plain_words(text: str) -> list[str]:
    """Lower-cased words, numbers canonical, possessives and apostrophes gone ("didn't" -> "didnt")."""
    text = NUMBER.sub(lambda m: f" {_canonical(_number_value(m))} ", text.replace("’", "'"))
    return re.findall(r"\d+(?:\.\d+)?|[^\W\d_]+", re.sub(r"'s?\b", "", text.lower()))


def tokens(text: str) -> list[str]:
    """Content tokens: numbers canonical, possessives and plurals folded, stop words dropped."""
    return [_fold(t) for t in _plain_words(text) if t not in STOP_WORDS]


# Names the war is told with under several forms; a name also matches through its aliases.
NAME_ALIASES = {
    "soviet union": {"ussr", "soviet", "russia"},
    "united states": {"us", "usa", "america", "american"},
    "united kingdom": {"uk", "britain", "british"},
    "great britain": {"uk", "britain", "british"},
    "nazi germany": {"germany", "german", "reich"},
}
_ALIASES = {" ".join(map(_fold, name.split())): aliases for name, aliases in NAME_ALIASES.items()}


def name_found(core: list[str], answer_tokens: set[str]) -> bool:
    """The name's last word (a surname) or one of its aliases is among the answer's tokens."""
    return core[-1] in answer_tokens or bool(_ALIASES.get(" ".join(core), set()) & answer_tokens)


def extract_names(text: str) -> list[tuple[str, list[str]]]:
    """(span, core words) of each name: the core is lower-cased with leading titles and
    sentence-initial words removed. A span is a name when two core words remain ("Friedrich
    Paulus") or a title preceded it ("General Patton"); "In January", "The Germans" are not."""
    names = []
    for match in NAME.finditer(text):
        words, titled = _plain_words(match[0]), False
        while words and (words[0] in TITLES or words[0] in STOP_WORDS | NEGATION_WORDS):
            titled |= words[0] in TITLES
            words.pop(0)
        while words and words[-1] in STOP_WORDS:  # "We Can Do It": the surname must be a content word
            words.pop()
        words = [_fold(w) for w in words if w not in MONTHS_DAYS]
        if len(words) >= 2 or (titled and words):
            names.append((match[0], words))
    return names


# --- heuristic judge ---------------------------------------------------------------------

TRUE_LABELS, FALSE_LABELS = {"true", "yes", "correct"}, {"false", "no", "incorrect"}
# A leading label set off by punctuation: "True.", "No, he did not" (not "No German unit…").
LEADING_LABEL = re.compile(r"^\W*(true|false|yes|no|correct|incorrect)\b(?:[.,;:!]|\s*$)", re.IGNORECASE)
# The student's label leads its answer: "True", "False, it was 1943"; "That is not true" and a
# label deep inside a sentence are no label (graded on the label only, so it must be the label).
# "True or false: …" (the question echoed back) is no label.
ANSWER_LABEL = re.compile(r"^\W*(true|false)\b(?!\s+or\s+(?:true|false)\b)", re.IGNORECASE)


def _leading_label(text: str) -> bool | None:
    match = LEADING_LABEL.match(text)
    return None if match is None else match[1].lower() in TRUE_LABELS


def option_words(text: str) -> list[str]:
    """An option's or answer's words for whole-option matching: case, punctuation, "the" and
    whitespace folded, numbers canonical ("1,500" = "1500")."""
    return [w for w in _plain_words(text) if w != "the"]


def _or_options(question: str, reference: str) -> list[str] | None:
    """[chosen, rival] of an "…, X or Y?" question whose reference opens with X or Y. The prompts
    put the options after a comma; without one the rival's extent is unknown and is taken as
    long as the chosen option."""
    *before, segment = re.split(r"[,:;]", question.rstrip().rstrip("?"))
    chosen = option_words(re.split(r"[.,;]", reference, maxsplit=1)[0])
    if " or " not in segment or not chosen:
        return None
    left, right = (option_words(side) for side in segment.rsplit(" or ", 1))
    size = None if before else len(chosen)
    if left[-len(chosen) :] == chosen:
        rival = right[:size]
    elif right[: len(chosen)] == chosen:
        rival = left[-size:] if size else left
    else:
        return None
    return [" ".join(chosen), " ".join(rival)] if rival and rival != chosen else None


def closed_check(
    question: str, reference: str, answer: str, options: Sequence[str] | None = None
) -> tuple[str, str] | None:
    """(check, problem or "") for a true/false, yes/no, multiple-choice or "X or Y?" question;
    None when the question is open. True/false is graded on the answer's leading label only;
    a choice on whole options (evaluation/choice.py)."""
    true_false = question.lower().startswith("true or false")
    ref_label = _leading_label(reference)
    if ref_label is not None and true_false:
        label = ANSWER_LABEL.match(answer)
        if label is None:
            return "true_false", "no leading true/false label in the answer"
        got = label[1].lower() == "true"
        return "true_false", "the answer contradicts the reference" if got != ref_label else ""
    if ref_label is not None and (got := _leading_label(answer)) is not None:  # a yes/no question
        return "true_false", "the answer contradicts the reference" if got != ref_label else ""
    if true_false:
        return None
    listed = question_options(question)
    choices = list(options) if options and len(options) >= 2 else listed or _or_options(question, reference)
    if not choices:
        return None
    correct = correct_index(reference, choices, option_words)
    if correct is None:
        return None
    letters = listed is not None or len(choices) > 2 or LETTER.match(reference) is not None
    return "choice", choice_problem(answer, choices, correct, option_words, letters)


class HeuristicJudge:
    """A Judge (evaluation/judges.py): token recall plus hard checks on labels, options,
    years, numbers and names."""

    name = "heuristic"
    max_in_flight = 1  # pure CPU: threads would only contend for the GIL

    def __init__(
        self,
        min_overlap: float = 0.5,  # recall of reference content tokens; 0.5 lets a paraphrase through
        max_foreign_years: int = 0,  # other years the answer may offer when the reference has one
        max_foreign_numbers: int = 0,  # competing figures (>= 100, within 10x) the answer may offer
    ):
        if not 0 <= min_overlap <= 1:
            raise ValueError(f"min_overlap must be in [0, 1], got {min_overlap}")
        self.min_overlap = min_overlap
        self.max_foreign_years = max_foreign_years
        self.max_foreign_numbers = max_foreign_numbers

    def close(self) -> None:
        """Nothing to release: the Judge protocol's close."""

    def grade(
        self,
        question: str,
        reference: str,
        answer: str,
        window_text: str | None = None,
        options: Sequence[str] | None = None,
    ) -> Verdict:
        """`window_text` is unused (the student never saw it); `options` are the record's two
        choice options when known, else "X or Y?" options are read from the question."""
        ref_tokens, ans_tokens = set(tokens(reference)), set(tokens(answer))
        if not ref_tokens:
            tags = {"check": "bad_reference", "reason": "bad_reference"}
            return Verdict("ERROR", "bad_reference: no content words to grade against", None, tags)
        closed = closed_check(question, reference, answer, options) if answer.strip() else None
        if not ans_tokens and closed is None:  # a bare "A" or "No." has no content words but answers
            return Verdict("FAIL", "empty_answer: nothing to grade", 0.0, {"check": "empty_answer"})
        (q_years, q_numbers), q_tokens = extract_numbers(question), set(tokens(question))
        ref_years, ref_numbers = extract_numbers(reference)
        ans_years, ans_numbers = extract_numbers(answer)
        ref_names = extract_names(reference)
        for span, core in ref_names:  # a surname match recalls the whole name, titles included
            if name_found(core, ans_tokens):
                ans_tokens |= set(tokens(span))
        # Recall of what the reference adds to the question: "Paulus." fully answers "Who commanded
        # the 6th Army?" without echoing "commanded 6th Army".
        focus = ref_tokens - q_tokens or ref_tokens
        overlap = len(focus & ans_tokens) / len(focus)
        # "1500" reads as a year and "1,500" as a number: either kind matches either kind.
        q_all, ref_all, ans_all = q_years | q_numbers, ref_years | ref_numbers, ans_years | ans_numbers
        foreign_years = sorted(ans_years - ref_all - q_all) if ref_years else []
        foreign_numbers = sorted(
            n for n in ans_numbers - ref_all - q_all if n >= 100 and any(r / 10 <= n <= r * 10 for r in ref_numbers)
        )
        # Facts the question already states need not be repeated; the reference's others must be.
        missing_names = ", ".join(" ".join(c) for _, c in ref_names if not name_found(c, ans_tokens | q_tokens))
        # One way only: a rambling answer may say "not" about something else, but an answer to a
        # negated reference ("No unit broke out") that negates nothing states the opposite.
        flipped = negated(reference) and not negated(question) and not negated(answer)
        open_checks = [
            ("years", _listed(ref_years - q_all - ans_all)),
            ("numbers", _listed(ref_numbers - q_all - ans_all)),
            ("names", missing_names),
            ("negation", "the reference negates, the answer does not" if flipped else ""),
        ]
        checks = [closed] if closed else open_checks  # a closed question's label or option stands for them
        if closed is None or closed[0] != "true_false":  # true/false is graded on the label only
            checks += [
                ("foreign_years", _listed(foreign_years) if len(foreign_years) > self.max_foreign_years else ""),
                (
                    "foreign_numbers",
                    _listed(foreign_numbers) if len(foreign_numbers) > self.max_foreign_numbers else "",
                ),
            ]
        details = {"overlap": round(overlap, 3)}
        for check, problem in checks:
            if problem:
                return Verdict("FAIL", f"{check}: {problem}", overlap, details | {"check": check})
        if closed:
            return Verdict(
                "PASS", f"{closed[0]}: the answer agrees with the reference", overlap, details | {"check": closed[0]}
            )
        if overlap < self.min_overlap:
            why = f"overlap: recall {overlap:.2f} < {self.min_overlap:.2f}"
            return Verdict("FAIL", why, overlap, details | {"check": "overlap"})
        why = f"overlap: recall {overlap:.2f} >= {self.min_overlap:.2f}; years, numbers and names agree"
        return Verdict("PASS", why, overlap, details | {"check": "overlap"})


def negated(text: str) -> bool:
    return any(w in NEGATION_WORDS for w in _plain_words(text))


def _listed(values: Iterable[int | Decimal]) -> str:
    return ", ".join(str(v) if isinstance(v, int) else _canonical(v) for v in sorted(values))


# --- summary -------------------------------------------------------------------------


def summarise(verdicts: Iterable[Verdict]) -> dict:
    """Counts per verdict, per deciding check and per error reason; pass_rate = PASS / total, so
    unparsed and failed gradings count as not passed; None when nothing was graded (a rate of
    0.0 on 0 questions would read as a model that knows nothing)."""
    verdicts = list(verdicts)
    counts = Counter(v.verdict for v in verdicts)
    checks = Counter(v.details["check"] for v in verdicts if "check" in v.details)
    reasons = Counter(v.details["reason"] for v in verdicts if v.verdict == "ERROR" and "reason" in v.details)
    return {
        "total": len(verdicts),
        **{name.lower(): counts.get(name, 0) for name in VERDICTS},
        "pass_rate": counts.get("PASS", 0) / len(verdicts) if verdicts else None,
        "checks": dict(sorted(checks.items())),
        "error_reasons": dict(sorted(reasons.items())),
    }
