"""Exams: hand-written quiz files about the corpus, scored by log-likelihood and by generation.

An exam is a folder of JSONL files (`--exams data/exams`; every `*.jsonl`, in name order), one
question per line:
  {"id": "stalingrad-01",             unique across the folder
   "article": "Battle of Stalingrad", the corpus article the question is about
   "question": "When did ... end?",
   "options": ["...", "...", "...", "..."],  2+ options (optional: without them the item is
                                      graded on `reference` by generation only)
   "answer": 2,                       index of the correct option (with options)
   "reference": "2 February 1943",    the short correct answer (required without options)
   "evidence": "..."}                 the article sentence the answer comes from (for readers)
Questions whose article is one the encode stage held out (val articles) are reported apart as
`exam_unseen`: the model never read their facts.

Scored three ways (evaluation/report.py gathers them):
  ll          lm-evaluation-harness multiple choice (evaluation/loglik.py): acc and acc_norm of
              each option's log-prob as the reply to the ChatML question; chance 1/n_options
  generated   the question rendered as the training multiple_choice records are
              ("question\\nA) ...\\nB) ...") and the model's answer ("C) 1932") graded by the judge
  no_options  the question alone, the answer graded against the correct option (naming a wrong
              option whole fails)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from evaluation.choice import LETTERS


class ExamError(ValueError):
    """A malformed exam file; the message names the file, line and field."""


def check_item(item: object, where: str) -> dict:
    """The item, checked; raises ExamError naming `where` and the problem."""
    if not isinstance(item, dict):
        raise ExamError(f"{where}: expected an object")
    for key in ("id", "article", "question"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise ExamError(f"{where}: '{key}' must be a non-empty string")
    options = item.get("options")
    if options is None:
        if not isinstance(item.get("reference"), str) or not item["reference"].strip():
            raise ExamError(f"{where}: an item without options needs a 'reference'")
        return item
    if not (isinstance(options, list) and 2 <= len(options) <= len(LETTERS)) or not all(
        isinstance(o, str) and o.strip() for o in options
    ):
        raise ExamError(f"{where}: 'options' must be 2 to {len(LETTERS)} non-empty strings")
    answer = item.get("answer")
    if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer < len(options):
        raise ExamError(f"{where}: 'answer' must be an option index, got {answer!r}")
    return item


def read_exam_items(files: Iterable[tuple[str, Iterable[object]]]) -> list[dict]:
    """Checked items of (file name, parsed lines) pairs, in order; ids must be unique."""
    items, seen = [], set()
    for name, rows in files:
        for line, row in enumerate(rows, 1):
            item = check_item(row, f"{name}:{line}")
            if item["id"] in seen:
                raise ExamError(f"{name}:{line}: duplicate id {item['id']!r}")
            seen.add(item["id"])
            items.append(dict(item, exam=name))
    return items


def exam_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jsonl"))


def with_options(item: dict) -> str:
    """The question as the training multiple_choice records render it."""
    lines = "\n".join(f"{LETTERS[i]}) {o}" for i, o in enumerate(item["options"]))
    return f"{item['question']}\n{lines}"


def _question(item: dict, variant: str, text: str, reference: str) -> dict:
    """A question in evaluation/questions.py's shape, so the judge and the sample rows take it."""
    return {
        "id": f"{item['id']}:{variant}",
        "kind": "exam",
        "type": f"exam_{variant}",
        "article": item["article"],
        "window": None,
        "prompt": [{"role": "user", "content": text}],
        "question": text,
        "reference": reference,
        "options": item.get("options"),
        "correct": item.get("answer"),
        "group": item["id"],
        "variant": variant,
    }


def exam_questions(item: dict) -> list[dict]:
    """The generated questions of one item: with options and without ("no_options"), or the
    question alone against its reference when it has no options ("open")."""
    if item.get("options") is None:
        return [_question(item, "open", item["question"], item["reference"])]
    correct = item["options"][item["answer"]]
    return [
        _question(item, "options", with_options(item), f"{LETTERS[item['answer']]}) {correct}"),
        _question(item, "no_options", item["question"], correct),
    ]


def split_exam(items: list[dict], unseen_articles: set[str]) -> dict[str, list[dict]]:
    """{"exam": items on trained articles, "exam_unseen": items on held-out articles}."""
    return {
        "exam": [i for i in items if i["article"] not in unseen_articles],
        "exam_unseen": [i for i in items if i["article"] in unseen_articles],
    }
