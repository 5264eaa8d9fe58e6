"""Cleaning one downloaded article: citation marks, reference sections and markup leftovers
stripped, unicode and whitespace normalised, non-prose lines (tables, lists, captions) removed.

Whole articles that cannot be used are dropped with a reason (common/reasons.py): unreadable
line (`invalid_utf8`, `invalid_json`), `not_an_object`, `no_title`, `no_text`, `too_short`,
`duplicate_title`. Removed sections and lines are counted separately by kind (`removed`).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from common.files import JsonlLine
from common.reasons import Drops


@dataclass(frozen=True)
class CleanParams:
    min_chars: int  # articles shorter than this after cleaning are dropped
    min_prose_words: int  # an unpunctuated line shorter than this is a list item or caption
    drop_headings: tuple[str, ...]  # sections (and their subsections) that are not prose


CITATION = re.compile(
    r"\[\s*(?:\d+(?:\s*[,–-]\s*\d+)*|[a-z]{1,2}|(?:note|nb|n)\s*\d+|"
    r"(?:full\s+)?citation needed|clarification needed|verification needed|page needed|"
    r"better source needed|dubious(?:\s*[–-]\s*discuss)?|discuss|who\?|when\?|where\?|which\?|"
    r"why\?|by whom\?|according to whom\?|year needed|failed verification|original research\?)\s*\]",
    re.IGNORECASE,
)
REF_TAG = re.compile(r"<ref[^>/]*/>|<ref[^>]*>.*?</ref>", re.IGNORECASE | re.DOTALL)
HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
FILE_LINK = re.compile(r"\[\[(?:File|Image|Category|Media):[^\[\]]*(?:\[\[[^\]]*\]\][^\[\]]*)*\]\]", re.IGNORECASE)
PIPED_LINK = re.compile(r"\[\[[^\[\]|]*\|([^\[\]]*)\]\]")
PLAIN_LINK = re.compile(r"\[\[([^\[\]]*)\]\]")
EXTERNAL_LINK = re.compile(r"\[(?:https?:)?//\S+\s+([^\]]*)\]")
BARE_URL = re.compile(r"\bhttps?://\S+")
EMPHASIS = re.compile(r"'{2,5}")
TABLE_LINE = re.compile(r"^\s*(?:\{\||\|\}|\|-|\||!)")
LIST_LINE = re.compile(r"^\s*(?:[*#;:•▪·]|-\s|–\s|\d+[.)]\s)")
INVISIBLE = re.compile(r"[\u200b-\u200f\u2060\ufeff\u00ad]")
TERMINAL = re.compile(r"[.!?][\"'”’)\]]*$")


def strip_markup(text: str) -> str:
    """Remove citation marks and wiki/HTML leftovers from one block of text."""
    text = REF_TAG.sub("", text)
    for _ in range(5):  # templates nest; peel them from the inside out
        text, count = TEMPLATE.subn("", text)
        if not count:
            break
    text = FILE_LINK.sub("", text)
    text = PIPED_LINK.sub(r"\1", text)
    text = PLAIN_LINK.sub(r"\1", text)
    text = EXTERNAL_LINK.sub(r"\1", text)
    text = BARE_URL.sub("", text)
    text = HTML_TAG.sub("", text)
    text = EMPHASIS.sub("", text)
    return CITATION.sub("", text)


def normalise(text: str) -> str:
    """NFKC (folds non-breaking spaces, full-width forms, ligatures), no invisible or control
    characters, single spaces, no space before punctuation left behind by removed marks."""
    text = unicodedata.normalize("NFKC", text)
    text = INVISIBLE.sub("", text)
    text = "".join(c for c in text if c in "\n\t" or unicodedata.category(c)[0] != "C")
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r" +([.,;:!?%)])", r"\1", text)
    text = re.sub(r"\( +", "(", text)
    return text.strip()


def line_reason(line: str, min_prose_words: int) -> str | None:
    """Why a line is not prose, or None if it is."""
    if TABLE_LINE.match(line):
        return "table"
    if LIST_LINE.match(line):
        return "list"
    if not TERMINAL.search(line) and len(line.split()) < min_prose_words:
        return "not_prose"
    return None


def clean_section_text(text: str, params: CleanParams, counts: Counter) -> str:
    """One section's prose: one paragraph per kept line; removed lines counted by kind."""
    paragraphs = []
    for raw_line in strip_markup(text).splitlines():
        if not raw_line.strip():
            continue
        reason = line_reason(raw_line, params.min_prose_words)
        if reason:
            counts[reason] += 1
            continue
        line = normalise(raw_line)
        if line:
            paragraphs.append(line)
    return "\n\n".join(paragraphs)


def article_problem(record: object) -> str | None:
    """Why a download record cannot be an article at all (a drop reason), or None."""
    if not isinstance(record, dict):
        return "not_an_object"
    title = record.get("title")
    if not isinstance(title, str) or not title.strip():
        return "no_title"
    sections = record.get("sections")
    if not isinstance(sections, list) or not sections:
        return "no_text"
    return None


def length_problem(chars: int, min_chars: int) -> str | None:
    """Why a cleaned article is too little text to keep, or None."""
    if chars == 0:
        return "no_text"
    if chars < min_chars:
        return "too_short"
    return None


def clean_article(record: dict, params: CleanParams, counts: Counter) -> tuple[dict | None, str | None]:
    """Clean one download record; returns (record, None) or (None, drop reason).

    `counts` gets every removed section and line by kind."""
    reason = article_problem(record)
    if reason:
        return None, reason
    drop_headings = {h.lower() for h in params.drop_headings}
    kept, dropping_below = [], None
    for section in record["sections"]:
        if not isinstance(section, dict) or not isinstance(section.get("text"), str):
            counts["section_malformed"] += 1
            continue
        heading = normalise(strip_markup(str(section.get("heading", ""))))
        level = int(section.get("level", 2))
        if dropping_below is not None and level > dropping_below:
            counts["section_under_dropped_heading"] += 1
            continue
        dropping_below = None
        if heading.lower() in drop_headings:
            counts["section_reference"] += 1
            dropping_below = level
            continue
        text = clean_section_text(section["text"], params, counts)
        if text:
            kept.append({"heading": heading, "level": level, "text": text})
        else:
            counts["section_empty"] += 1
    chars = sum(len(s["text"]) for s in kept)
    reason = length_problem(chars, params.min_chars)
    if reason:
        return None, reason
    return {**record, "title": normalise(record["title"]), "sections": kept, "chars": chars}, None


def clean_articles(lines: Iterable[JsonlLine], params: CleanParams, drops: Drops, counts: Counter) -> Iterator[dict]:
    """Clean a stream of JsonlLine; unreadable lines and bad articles are counted in `drops`."""
    seen_titles: set[str] = set()
    for line in lines:
        if line.error:
            drops.add(line.error, f"line={line.lineno}")
            continue
        article, reason = clean_article(line.record, params, counts)
        if article is not None and article["title"] in seen_titles:
            article, reason = None, "duplicate_title"
        if article is None:
            title = line.record.get("title") if isinstance(line.record, dict) else None
            drops.add(reason, f"line={line.lineno} title={title!r}")
            continue
        seen_titles.add(article["title"])
        yield article
