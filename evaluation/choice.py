"""Grading a choice answer: which option an answer names, whole.

A two-option contrastive item ("…, X or Y?") or a multiple-choice item ("A) … B) …") passes only
when the answer names the WHOLE correct option and no other option: "19 June" does not name
"19 September", "19 February 1943" does not name "May 1943", and "Paulus or Rommel" names both.
Options and answers are compared after `option_words` (case, punctuation, "the", whitespace and
number spellings folded: "1,500" = "1500"), as a contiguous run of words. A letter answer ("C",
"C) 1932", "(C)") picks option C of a multiple-choice item, and still fails when its text names
another option.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

# "A) Erwin Rommel" lines of a multiple-choice question, as synth/prompt_types.py renders them.
OPTION_LINE = re.compile(r"^\s*\(?([A-E])[).:]\s+(.+?)\s*$", re.MULTILINE)
LETTER = re.compile(r"^\W*(?:answer\W*)?\(?([A-E])(?:[).:]|\s*$)", re.IGNORECASE)
LETTERS = "ABCDE"


def contains_run(words: Sequence[str], run: Sequence[str]) -> bool:
    """`run` occurs in `words` as contiguous words."""
    n = len(run)
    return n > 0 and any(list(words[i : i + n]) == list(run) for i in range(len(words) - n + 1))


def question_options(question: str) -> list[str] | None:
    """The options of a multiple-choice question's "A) …" lines, or None."""
    found = OPTION_LINE.findall(question)
    letters = [letter.upper() for letter, _ in found]
    if len(found) < 2 or letters != list(LETTERS[: len(found)]):
        return None
    return [text for _, text in found]


def correct_index(reference: str, options: Sequence[str], words: Callable[[str], list[str]]) -> int | None:
    """The option the reference picks: its letter ("B) Paulus"), else the option it names whole
    first ("Friedrich Paulus. He led…"); None when it names none."""
    letter = LETTER.match(reference)
    if letter and LETTERS.index(letter[1].upper()) < len(options):
        return LETTERS.index(letter[1].upper())
    ref = words(reference)
    named = [(_first_at(ref, words(o)), i) for i, o in enumerate(options)]
    named = [(at, i) for at, i in named if at is not None]
    return min(named)[1] if named else None


def _first_at(words: Sequence[str], run: Sequence[str]) -> int | None:
    n = len(run)
    return next((i for i in range(len(words) - n + 1) if n and list(words[i : i + n]) == list(run)), None)


def choice_problem(
    answer: str, options: Sequence[str], correct: int, words: Callable[[str], list[str]], letters: bool
) -> str:
    """ "" when the answer picks option `correct` (whole, and no rival), else what is wrong.
    `letters`: the item is multiple choice, so a leading letter is an answer."""
    runs = [words(o) for o in options]
    # An option contained in another ("May 1943" in "19 May 1943") is not named by the longer one.
    said = words(answer)
    named = {i for i, run in enumerate(runs) if contains_run(said, run)}
    named -= {
        i for i in named for j in named if j != i and len(runs[j]) > len(runs[i]) and contains_run(runs[j], runs[i])
    }
    letter = LETTER.match(answer) if letters else None
    if letter:
        picked = LETTERS.index(letter[1].upper())
        rivals = named - {picked}
        if rivals:
            return f"picked {letter[1].upper()} but names option {LETTERS[min(rivals)]}"
        return "" if picked == correct else f"picked {letter[1].upper()}, the answer is {LETTERS[correct]}"
    if correct not in named:
        return "names another option" if named else "the answer names no option whole"
    if len(named) > 1:
        return "the answer names more than one option"
    return ""
