"""clean: strip citation marks, reference sections and markup leftovers; normalise text.

Input:  data/raw/articles.jsonl (download records)
Output: data/clean/articles.jsonl (same shape, cleaned sections) and metrics/clean.json
        with every dropped article, section and paragraph counted by reason.

A broken line (invalid UTF-8 or JSON, no title, no text) costs that article only: it is
counted and logged, and the other articles go on.

Example:
  python -m stages.clean --params params.yaml --in data/raw/articles.jsonl \
      --out data/clean/articles.jsonl --metrics metrics/clean.json
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from common.cli import setup_logging
from common.io import iter_jsonl_lines, write_json, write_jsonl
from common.params import ParamsError, load_section

log = logging.getLogger("clean")


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


def clean_section_text(text: str, params: CleanParams, dropped: Counter) -> str:
    paragraphs = []
    for raw_line in strip_markup(text).splitlines():
        if not raw_line.strip():
            continue
        reason = line_reason(raw_line, params.min_prose_words)
        if reason:
            dropped[reason] += 1
            continue
        line = normalise(raw_line)
        if line:
            paragraphs.append(line)
    return "\n\n".join(paragraphs)


def clean_article(record: dict, params: CleanParams, counts: Counter) -> tuple[dict | None, str | None]:
    """Clean one download record; returns (record, None) or (None, drop reason)."""
    if not isinstance(record, dict):
        return None, "not_an_object"
    title = record.get("title")
    if not isinstance(title, str) or not title.strip():
        return None, "no_title"
    sections = record.get("sections")
    if not isinstance(sections, list) or not sections:
        return None, "no_text"
    drop_headings = {h.lower() for h in params.drop_headings}
    kept, dropping_below = [], None
    for section in sections:
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
    if chars == 0:
        return None, "no_text"
    if chars < params.min_chars:
        return None, "too_short"
    return {**record, "title": normalise(title), "sections": kept, "chars": chars}, None


def clean_articles(lines: Iterable, params: CleanParams, drops: Counter, counts: Counter) -> Iterator[dict]:
    """Clean a stream of JsonlLine; unreadable lines and bad articles are counted in `drops`."""
    seen_titles: set[str] = set()
    for line in lines:
        if line.error:
            drops[line.error] += 1
            log.warning("line=%d dropped reason=%s", line.lineno, line.error)
            continue
        article, reason = clean_article(line.record, params, counts)
        if article is not None and article["title"] in seen_titles:
            article, reason = None, "duplicate_title"
        if article is None:
            drops[reason] += 1
            title = line.record.get("title") if isinstance(line.record, dict) else None
            log.warning("line=%d title=%r dropped reason=%s", line.lineno, title, reason)
            continue
        seen_titles.add(article["title"])
        yield article


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--in", dest="inp", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params = load_section(args.params, "clean", CleanParams)
    except ParamsError as exc:
        log.error("%s", exc)
        return 2
    if not args.inp.exists():
        log.error("%s: input not found (run the download stage first)", args.inp)
        return 2
    lines = list(iter_jsonl_lines(args.inp))
    if not lines:
        log.error("%s: input is empty: no articles to clean", args.inp)
        return 2
    drops: Counter = Counter()
    counts: Counter = Counter()
    articles = list(clean_articles(lines, params, drops, counts))
    if not articles:
        log.error("%s: every article was dropped: %s", args.inp, dict(drops))
        return 2
    write_jsonl(args.out, articles)
    write_json(
        args.metrics,
        {
            "articles_in": len(lines),
            "articles_out": len(articles),
            "dropped": dict(sorted(drops.items())),
            "removed": dict(sorted(counts.items())),
            "chars_out": sum(a["chars"] for a in articles),
        },
    )
    log.info("articles_in=%d articles_out=%d dropped=%s", len(lines), len(articles), dict(drops))
    return 0


if __name__ == "__main__":
    sys.exit(main())
