"""Cleaning one downloaded article: citation marks, reference sections and markup leftovers
stripped (corpus/markup.py), unicode and whitespace normalised, hard-wrapped lines joined into
paragraphs, non-prose lines (tables, short list items, captions) removed.

Whole articles that cannot be used are dropped with a reason (common/reasons.py): unreadable
line (`invalid_utf8`, `invalid_json`), `not_an_object`, `no_title`, `no_text` (nothing in
its sections), `no_prose` (text, but all of it markup, tables or lists), `too_short`,
`duplicate_title`. Removed sections and lines are counted separately by kind (`removed`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from common.files import JsonlLine
from common.reasons import Drops
from corpus.markup import normalise, strip_markup


@dataclass(frozen=True)
class CleanParams:
    min_chars: int  # articles shorter than this after cleaning are dropped
    min_prose_words: int  # an unpunctuated line shorter than this is a list item or caption
    drop_headings: tuple[str, ...]  # sections (and their subsections) that are not prose


TABLE_LINE = re.compile(r"^\s*(?:\{\||\|\}|\|-|\||!)")
LIST_MARKER = re.compile(r"^\s*(?:[*#;:•▪·+]+\s*|[-–]\s+|\d+[.)]\s+)")
# "1944. The army..." or "- and then" can also be the next line of a wrapped sentence.
AMBIGUOUS_MARKER = re.compile(r"^\s*(?:[-–]\s+|\d+[.)]\s+)")
LINE_BROKEN_IN_WORD = re.compile(r"(?:\w-|—)$")
TERMINAL = re.compile(r"[.!?][\"'”’)\]]*$")
# A line this much shorter than the block's longest line ends its paragraph unless the
# sentence before it is still open: a heading or caption, not the next line of wrapped prose.
SHORT_LINE_SHARE = 0.6
# A block whose lines are all this short is hard-wrapped text (books and speeches wrap at
# 60-80 columns, PDF copies near 100): a sentence end at a line end does not end its paragraph.
# In a block of longer lines (API extracts: one paragraph a line) it does.
WRAPPED_WIDTH = 120


def is_prose(text: str, min_prose_words: int) -> bool:
    """A sentence-ending line, or one long enough to be prose without its full stop."""
    return bool(TERMINAL.search(text)) or len(text.split()) >= min_prose_words


def is_prose_item(text: str, min_prose_words: int) -> bool:
    """A list item that is a sentence ("- The 6th Army surrendered on 2 February 1943."),
    not a link or a title ("* Operation Kutuzov"): it ends a sentence and is not a stub."""
    return bool(TERMINAL.search(text)) and len(text.split()) >= min_prose_words // 2


def join_wrapped(lines: list[str]) -> str:
    """Lines of one hard-wrapped paragraph as one line; a break after a dash or a hyphen
    joins without a space ("infamy—" + "the", "well-" + "known")."""
    text = lines[0]
    for line in lines[1:]:
        text += line if LINE_BROKEN_IN_WORD.search(text) else " " + line
    return text


def continues_sentence(line: str, current: list[str]) -> bool:
    """A line that looks like a list item ("1944. The ...") but follows an open sentence."""
    return bool(current) and bool(AMBIGUOUS_MARKER.match(line)) and not re.search(r"[.!?:]\S*$", current[-1])


def stands_alone(line: str, previous: list[str], following: str, width: int) -> bool:
    """A short unpunctuated line after a finished sentence, not leading on into the next
    line (a dash, a comma, a next line in lower case or a number): a heading or caption."""
    short = len(line) < SHORT_LINE_SHARE * width and not TERMINAL.search(line)
    leads_on = line.endswith(("-", "—", ",", ";")) or following[:1].islower() or following[:1].isdigit()
    return short and not leads_on and (not previous or bool(TERMINAL.search(previous[-1])))


def block_paragraphs(block: str, min_prose_words: int, counts: Counter) -> list[str]:
    """Paragraphs of one blank-line-separated block: wrapped lines (and lines that stop
    mid-sentence) joined, table lines and list items that are not prose removed (counted by
    kind), list items that are prose kept."""
    lines = [line.rstrip() for line in block.splitlines() if line.strip()]
    width = max((len(line.strip()) for line in lines), default=0)
    wrapped = len(lines) > 1 and width <= WRAPPED_WIDTH
    paragraphs: list[str] = []
    current: list[str] = []

    def finish(kind: str = "not_prose") -> None:
        if current:
            text = join_wrapped(current)
            keep = is_prose_item if kind == "list" else is_prose
            if keep(text, min_prose_words):
                paragraphs.append(text)
            else:
                counts[kind] += 1
            current.clear()

    for number, line in enumerate(lines):
        if TABLE_LINE.match(line):
            finish()
            counts["table"] += 1
        elif LIST_MARKER.match(line) and not continues_sentence(line, current):
            finish()
            current.append(LIST_MARKER.sub("", line))
            finish("list")
        else:
            line = line.strip()
            following = lines[number + 1].strip() if number + 1 < len(lines) else ""
            if stands_alone(line, current, following, width):
                finish()
                current.append(line)
                finish()
            else:
                current.append(line)
                if not wrapped and TERMINAL.search(line):
                    finish()
    finish()
    return paragraphs


def clean_section_text(text: str, params: CleanParams, counts: Counter) -> str:
    """One section's prose, paragraphs separated by a blank line; removed lines counted by kind.

    A blank line ends a paragraph; inside a block, hard-wrapped lines are joined, so a book
    or a speech wrapped at 70 columns gives sentences, not line fragments."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", strip_markup(text)):
        for paragraph in block_paragraphs(block, params.min_prose_words, counts):
            paragraph = normalise(paragraph)
            if paragraph:
                paragraphs.append(paragraph)
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


def length_problem(chars: int, min_chars: int, had_text: bool) -> str | None:
    """Why a cleaned article is too little text to keep, or None; a page whose text was all
    markup, lists or tables is `no_prose`, not `no_text`."""
    if chars == 0:
        return "no_prose" if had_text else "no_text"
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
    had_text = any(isinstance(s, dict) and str(s.get("text", "")).strip() for s in record["sections"])
    reason = length_problem(chars, params.min_chars, had_text)
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
