"""The prompt-type registry (data/prompt_types.yaml) and the reply parsers it names.

A prompt type is data: a name, a family, the record kind it yields, one prompt that asks
the helper LLM for question AND answer in a single reply, the reply format, and (for the
`chain` mode) a question-only prompt plus an answer prompt. The format names the parser
below that turns a reply into (question, answer, meta), or raises ParseError with a short
reason that the generate stage counts and stores with the raw reply.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

TEMPLATE_FIELDS = {"article", "section", "text", "question"}
KINDS = {"qa", "contrastive"}


class RegistryError(ValueError):
    """The registry file is malformed; the message names the file and the prompt type."""


class ParseError(ValueError):
    """A reply that does not match its format; `reason` is counted in metrics."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Parsed:
    question: str
    answer: str
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PromptType:
    name: str
    family: str
    kind: str  # record kind: qa | contrastive
    format: str  # parser name, a key of PARSERS
    prompt: str  # single-prompt mode: asks for question and answer in one reply
    description: str = ""
    weight: float = 1.0  # scheduling priority relative to the other types
    chain_question: str | None = None  # chain mode, call 1: asks for the question only
    chain_answer: str | None = None  # chain mode, call 2: answers {question} from the text
    expect_label: bool | None = None  # true_false types: the label the reply must carry

    def render(self, template: str, window: dict, question: str = "") -> str:
        return template.format(
            article=window["article"],
            section=window.get("section") or window["article"],
            text=window["text"],
            question=question,
        )


# --- parsers --------------------------------------------------------------------------

# "Question:", "**Question:**", "## Answer:" … After the colon only `*` is eaten: an
# underscore there may be a fill-in blank ("Sentence: ____ commanded the 6th Army").
LABEL = r"^\s*(?:[*_#>]+\s*)?{name}\s*(?:[*_]+\s*)?[:：]\s*(?:\*+\s*)?"


def _fields(reply: str, names: dict[str, str]) -> dict[str, str]:
    """Split a reply into labelled fields ("Question: …", "**Answer:** …"); a field runs
    until the next known label. `names` maps field -> label regex (alternatives)."""
    pattern = re.compile(
        "|".join(f"(?P<{key}>{LABEL.format(name=label)})" for key, label in names.items()),
        re.IGNORECASE | re.MULTILINE,
    )
    found: dict[str, str] = {}
    matches = list(pattern.finditer(reply))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(reply)
        key = match.lastgroup
        if key not in found:  # the first occurrence wins; a repeated label is the model rambling
            found[key] = reply[match.end() : end].strip().strip("*").strip()
    return found


def _require(fields: dict[str, str], *keys: str) -> None:
    for key in keys:
        if key not in fields:
            raise ParseError(f"missing_{key}")
        if not fields[key]:
            raise ParseError(f"empty_{key}")


def parse_qa(reply: str) -> Parsed:
    # No "Q:"/"A:" aliases: a line starting "A: " inside a long answer would cut it short.
    fields = _fields(reply, {"question": "question", "answer": "answer"})
    _require(fields, "question", "answer")
    return Parsed(fields["question"], fields["answer"])


TRUE_WORDS = {"true", "yes", "correct"}
FALSE_WORDS = {"false", "no", "incorrect"}


def parse_true_false(reply: str) -> Parsed:
    fields = _fields(reply, {"statement": "statement", "answer": "answer", "explanation": "explanation"})
    _require(fields, "statement", "answer")
    word = re.sub(r"[^a-z]", "", fields["answer"].split()[0].lower())
    if word not in TRUE_WORDS | FALSE_WORDS:
        raise ParseError("bad_label", fields["answer"][:40])
    label = word in TRUE_WORDS
    answer = "True." if label else "False."
    if fields.get("explanation"):
        answer += " " + fields["explanation"]
    return Parsed(f"True or false: {fields['statement']}", answer, {"label": label})


BLANK = re.compile(r"_{3,}")


def parse_fill_blank(reply: str) -> Parsed:
    fields = _fields(reply, {"sentence": "sentence", "answer": "answer"})
    _require(fields, "sentence", "answer")
    if len(BLANK.findall(fields["sentence"])) != 1:
        raise ParseError("missing_blank")
    sentence = BLANK.sub("____", fields["sentence"])
    return Parsed(f"Fill in the blank: {sentence}", fields["answer"])


OPTION_LINE = re.compile(r"^\s*\(?([A-E])[).:]\s+(.+?)\s*$", re.MULTILINE)


def parse_multiple_choice(reply: str) -> Parsed:
    fields = _fields(reply, {"question": "question", "answer": "answer"})
    _require(fields, "question", "answer")
    options = OPTION_LINE.findall(fields["question"])
    question = OPTION_LINE.sub("", fields["question"]).strip()
    letters = [letter for letter, _ in options]
    if len(options) < 3 or letters != list("ABCDE"[: len(options)]):
        raise ParseError("too_few_options")
    match = re.match(r"\(?([A-E])\b", fields["answer"].strip())
    if not match or match.group(1) not in letters:
        raise ParseError("bad_answer_letter", fields["answer"][:40])
    correct = letters.index(match.group(1))
    lines = "\n".join(f"{letter}) {text}" for letter, text in options)
    return Parsed(
        f"{question}\n{lines}",
        f"{letters[correct]}) {options[correct][1]}",
        {"options": [text for _, text in options], "correct": correct},
    )


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def parse_contrastive(reply: str) -> Parsed:
    fields = _fields(
        reply,
        {
            "question": "question",
            "option_a": "option a",
            "option_b": "option b",
            "answer": "answer",
            "explanation": "explanation",
            "feature": "feature",
        },
    )
    _require(fields, "question", "option_a", "option_b", "answer")
    options = [fields["option_a"].rstrip("."), fields["option_b"].rstrip(".")]
    if _norm(options[0]) == _norm(options[1]):
        raise ParseError("same_options")
    question_norm = f" {_norm(fields['question'])} "
    if any(f" {_norm(o)} " not in question_norm for o in options):
        raise ParseError("options_not_in_question")
    a, b = (_norm(o) for o in options)
    if f" {a} or {b} " not in question_norm and f" {b} or {a} " not in question_norm:
        raise ParseError("no_choice_span")  # contrast-swap needs the literal "X or Y"
    answer = _norm(fields["answer"])
    letter = fields["answer"].strip().upper().rstrip(".")
    if letter in ("A", "B", "OPTION A", "OPTION B"):
        correct = 0 if letter.endswith("A") else 1
    elif answer == _norm(options[0]) or answer.startswith(_norm(options[0]) + " "):
        correct = 0
    elif answer == _norm(options[1]) or answer.startswith(_norm(options[1]) + " "):
        correct = 1
    else:
        raise ParseError("answer_not_an_option", fields["answer"][:40])
    text = options[correct][:1].upper() + options[correct][1:] + "."
    if fields.get("explanation"):
        text += " " + fields["explanation"]
    meta = {"options": options, "correct": correct}
    if fields.get("feature"):
        meta["feature"] = fields["feature"].lower()
    return Parsed(fields["question"], text, meta)


def check_expectations(ptype: PromptType, parsed: Parsed) -> Parsed:
    if ptype.expect_label is not None and parsed.meta.get("label") is not ptype.expect_label:
        raise ParseError("wrong_label", f"{ptype.name} needs a {ptype.expect_label} statement")
    return parsed


def parse_question_only(reply: str) -> str:
    """Chain mode, call 1: the question alone (labelled or bare)."""
    fields = _fields(reply, {"question": "question", "answer": "answer"})
    if fields.get("question"):
        return fields["question"].splitlines()[0].strip()
    # Unlabelled: the first line that asks something, not a preamble ("Here is a question:").
    lines = [line.strip() for line in reply.splitlines() if line.strip()]
    asking = [line for line in lines if line.endswith("?")]
    if not asking:
        raise ParseError("missing_question")
    return asking[0]


def parse_answer_only(reply: str) -> str:
    """Chain mode, call 2: the answer, with a leading "Answer:" label removed."""
    fields = _fields(reply, {"answer": "answer"})
    answer = fields.get("answer") or reply.strip()
    if not answer:
        raise ParseError("empty_answer")
    return answer


PARSERS: dict[str, Callable[[str], Parsed]] = {
    "qa": parse_qa,
    "true_false": parse_true_false,
    "fill_blank": parse_fill_blank,
    "multiple_choice": parse_multiple_choice,
    "contrastive": parse_contrastive,
}


# --- registry -------------------------------------------------------------------------


def _check_template(where: str, template: str, allowed: set[str]) -> None:
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    unknown = names - allowed
    if unknown:
        raise RegistryError(f"{where}: unknown template field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def load_registry(path: str | Path) -> list[PromptType]:
    """Read and validate the registry; types keep their file order."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RegistryError(f"{path}: cannot read registry: {exc}") from exc
    entries = raw.get("types") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise RegistryError(f"{path}: expected a top-level 'types:' list")
    known = {f for f in PromptType.__dataclass_fields__}
    types, seen = [], set()
    for number, entry in enumerate(entries, start=1):
        where = f"{path}: type #{number} ({entry.get('name', '?') if isinstance(entry, dict) else '?'})"
        if not isinstance(entry, dict):
            raise RegistryError(f"{where}: expected a mapping")
        unknown = set(entry) - known
        if unknown:
            raise RegistryError(f"{where}: unknown key(s) {sorted(unknown)}")
        for key in ("name", "family", "kind", "format", "prompt"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise RegistryError(f"{where}: missing '{key}'")
        if entry["name"] in seen:
            raise RegistryError(f"{where}: duplicate name")
        if entry["format"] not in PARSERS:
            raise RegistryError(f"{where}: unknown format '{entry['format']}'; known: {sorted(PARSERS)}")
        if entry["kind"] not in KINDS:
            raise RegistryError(f"{where}: kind must be one of {sorted(KINDS)}")
        _check_template(where, entry["prompt"], TEMPLATE_FIELDS - {"question"})
        if bool(entry.get("chain_question")) != bool(entry.get("chain_answer")):
            raise RegistryError(f"{where}: chain_question and chain_answer go together")
        if entry.get("chain_question"):
            _check_template(where, entry["chain_question"], TEMPLATE_FIELDS - {"question"})
            _check_template(where, entry["chain_answer"], TEMPLATE_FIELDS)
        seen.add(entry["name"])
        types.append(PromptType(**{k: (v.strip() if isinstance(v, str) else v) for k, v in entry.items()}))
    return types
