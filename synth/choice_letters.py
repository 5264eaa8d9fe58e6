"""Multiple-choice records with the correct option at every letter equally often.

A generator tends to put the right answer at one letter (the rules generator's draws, an LLM's
habit of "B"), and a model then learns the letter instead of the fact. As the contrast-swap
stage does for two options, the correct option is moved, without changing the question or the
options themselves: records with n options get target letters in turn from a seeded start, so
each letter is correct in 1/n of them (to within one). Records come in the generate stage's
fixed order, so the same records give the same letters.
"""

from __future__ import annotations

import random
from collections import Counter

LETTERS = "ABCDE"


def move_correct(record: dict, target: int) -> dict | None:
    """The record with its correct option at index `target` (the others keep their order),
    or None when its question does not end in its lettered options."""
    meta = record["meta"]
    options, correct = list(meta["options"]), meta["correct"]
    question = record["messages"][0]["content"].split("\n")
    n = len(options)
    if len(question) <= n or question[-n:] != [f"{LETTERS[i]}) {o}" for i, o in enumerate(options)]:
        return None
    options.insert(target, options.pop(correct))
    lines = [f"{LETTERS[i]}) {o}" for i, o in enumerate(options)]
    user = dict(record["messages"][0], content="\n".join(question[:-n] + lines))
    assistant = dict(record["messages"][1], content=lines[target])
    return {
        **record,
        "messages": [user, assistant, *record["messages"][2:]],
        "meta": {**meta, "options": options, "correct": target},
    }


def balance_choice_letters(records: list[dict], choice_types: set[str], seed: int) -> dict[str, int]:
    """Rewrite, in place, the records of `choice_types` (multiple-choice formats) so each letter
    is correct equally often; returns correct letter -> count (and "unbalanced" if any record
    could not be rewritten)."""
    turns: Counter = Counter()
    letters: Counter = Counter()
    for i, record in enumerate(records):
        meta = record.get("meta") or {}
        if record.get("type") not in choice_types or not isinstance(meta.get("options"), list):
            continue
        n = len(meta["options"])
        start = random.Random(f"{seed}:choice:{n}").randrange(n)
        moved = move_correct(record, (start + turns[n]) % n)
        if moved is None:
            letters["unbalanced"] += 1
            continue
        turns[n] += 1
        records[i] = moved
        letters[LETTERS[moved["meta"]["correct"]]] += 1
    return dict(sorted(letters.items()))
