"""Structural checks of the filter stage: is a record well formed, and are its texts plain prose?

A record's text fields are every message's content ("messages[1].content") and every string in
`meta` except label-like keys ("meta.options[0]"). A record fails on the first of:
  structure:malformed         no messages list of {role, content} strings, or not an object
  structure:empty             a text field that is empty or only whitespace
  structure:too_long          a field over `max_chars` (a runaway generation, a repetition loop)
  structure:think             <think> or </think> left in the text (Qwen3 reasoning)
  structure:chat_tag          <|im_start|>, <|im_end|>, <|endoftext|>... (a template leak)
  structure:label             a reply label at a line start: "Answer:", "Question:", "Option A:"
  structure:markup            markdown (bold, heading, code fence, bullet, link), HTML tags,
                              wiki brackets or citation marks ("[12]")
  structure:repeats_question  the answer is the question, or contains all of it
  content:none                a field that is only NONE (a model declining: the prompts invite it)
  content:refusal             a refusal or an assistant talking about itself ("As an AI language
                              model...", "I'm sorry, but I cannot...")
  content:source_reference    text that talks about its source ("according to the text", "the
                              passage does not say"): the model never sees one at training time
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llm.base import DECLINED, REFUSAL


@dataclass(frozen=True)
class Rejection:
    """Why a record is dropped: which field, which check, and the evidence."""

    field: str | None
    check: str
    detail: str


THINK = re.compile(r"</?think>", re.IGNORECASE)
CHAT_TAG = re.compile(r"<\|[a-z_]+\|>")
LABEL = re.compile(
    r"^[ \t]*(?:question|answer|statement|explanation|option [a-e]|feature|sentence)[ \t]*:", re.I | re.M
)
MARKUP = (
    ("bold", re.compile(r"\*\*[^*\n]+\*\*")),
    ("heading", re.compile(r"^#{1,6}[ \t]", re.M)),
    ("code fence", re.compile(r"```")),
    ("bullet", re.compile(r"^[ \t]*[-*•][ \t]+\S", re.M)),
    ("link", re.compile(r"\[[^\]\n]+\]\([^)\s]+\)")),
    ("html", re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>\n]*)?/?>")),
    ("wiki", re.compile(r"\[\[|\]\]|\{\{|\}\}")),
    ("citation", re.compile(r"\[\d+\]")),
)
# Each of THINK, CHAT_TAG, LABEL and MARKUP needs one of these characters; most prose has none,
# and one scan for them is cheaper than those eleven (93% of the filter bench's fields skip them).
MARK_CHARS = re.compile(r"[<:*#`•\[\]{}\-]")
NON_WORD = re.compile(r"[^\w]+")
# "the text" / "the passage" / "this excerpt" as a source, not "the text of the treaty" or "the
# passage of the Lend-Lease Act".
SOURCE_REFERENCE = re.compile(
    r"\b(?:the|this)\s+(?:(?:given|provided|above|following|source|original)\s+)?"
    r"(?:text|passage|excerpt|paragraph)\b(?!\s+(?:of|was|were)\b)",
    re.IGNORECASE,
)
CONTENT = (("none", DECLINED), ("refusal", REFUSAL), ("source_reference", SOURCE_REFERENCE))


def text_fields(record: Any, skip_meta_keys: tuple[str, ...]) -> list[tuple[str, str]] | None:
    """(path, text) of every text field, in a fixed order; None if the record is malformed."""
    if not isinstance(record, dict):
        return None
    messages = record.get("messages")
    if not isinstance(messages, list) or len(messages) < 2:
        return None
    fields = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            return None
        fields.append((f"messages[{i}].content", message["content"]))
    meta = record.get("meta")
    if isinstance(meta, dict):
        for key in sorted(meta):
            value = meta[key]
            if key in skip_meta_keys:
                continue
            if isinstance(value, str):
                fields.append((f"meta.{key}", value))
            elif isinstance(value, list):
                fields.extend((f"meta.{key}[{j}]", v) for j, v in enumerate(value) if isinstance(v, str))
    return fields


def _words(text: str) -> str:
    return " " + NON_WORD.sub(" ", text.lower()).strip() + " "


def text_problem(text: str, max_chars: int) -> tuple[str, str] | None:
    """The first (check, detail) one text field fails on its own, or None."""
    if not text.strip():
        return "structure:empty", "empty or whitespace only"
    if len(text) > max_chars:
        return "structure:too_long", f"{len(text)} chars > max_chars {max_chars}"
    if MARK_CHARS.search(text):
        return _marked_problem(text) or _content_problem(text)
    return _content_problem(text)


def _marked_problem(text: str) -> tuple[str, str] | None:
    for check, pattern in (("think", THINK), ("chat_tag", CHAT_TAG), ("label", LABEL)):
        match = pattern.search(text)
        if match:
            return f"structure:{check}", f"{match.group().strip()!r} at char {match.start()}"
    for name, pattern in MARKUP:
        match = pattern.search(text)
        if match:
            return "structure:markup", f"{name} {match.group()[:40]!r} at char {match.start()}"
    return None


def _content_problem(text: str) -> tuple[str, str] | None:
    for check, pattern in CONTENT:
        match = pattern.search(text)
        if match:
            return f"content:{check}", f"{match.group().strip()[:40]!r} at char {match.start()}"
    return None


def structure_rejection(
    record: Any,
    fields: list[tuple[str, str]] | None,
    max_chars: int,
    problem_of: Callable[[str, int], tuple[str, str] | None] = text_problem,
) -> Rejection | None:
    """The first structural problem of a record, or None; `problem_of` is `text_problem` or a
    memo of it (a batch judges each distinct text once)."""
    if fields is None:
        return Rejection(None, "structure:malformed", "needs an object with a messages list of {role, content} strings")
    for path, text in fields:
        problem = problem_of(text, max_chars)
        if problem:
            return Rejection(path, *problem)
    messages = record["messages"]
    for i in range(len(messages) - 1):
        if messages[i].get("role") == "user" and messages[i + 1].get("role") == "assistant":
            question, answer = _words(messages[i]["content"]), _words(messages[i + 1]["content"])
            # Equal, or the whole question inside the answer ("Who led X? Zhukov."): a question
            # of four words or more, so "Yes." never "contains" a question.
            if question == answer or (len(question.split()) >= 4 and question in answer):
                return Rejection(
                    f"messages[{i + 1}].content", "structure:repeats_question", "the answer repeats the question"
                )
    return None
