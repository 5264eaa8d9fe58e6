"""Overlapping windows of sentences over one article, each with a stable id.

Windows of `size` sentences advance by `stride` inside one article (never across two); the
last window is aligned to the article's end so no tail sentence is left out. Each window
records its article, section(s), whether it opens its article or a section, sentence offsets
and a stable id (hash of article, offsets and text), so every later record can cite the text
it came from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from common.params import ParamsError
from corpus.sentences import split_sentences


@dataclass(frozen=True)
class WindowParams:
    size: int  # sentences per window
    stride: int  # sentences between window starts (size - stride overlap)


def check_params(params: WindowParams, where: str) -> None:
    if params.size < 1 or not params.stride >= 1:
        raise ParamsError(f"{where}:window: size and stride must be >= 1")
    if params.stride > params.size:  # windows would skip the sentences between them, uncounted
        raise ParamsError(
            f"{where}:window.stride: {params.stride} is more than window.size {params.size}: "
            f"the {params.stride - params.size} sentences between two windows would never be seen"
        )


def article_sentences(article: dict) -> list[tuple[str, str]]:
    """(section heading, sentence) pairs of an article, in order; paragraphs split alone."""
    pairs = []
    for section in article["sections"]:
        for paragraph in section["text"].split("\n\n"):
            pairs.extend((section["heading"], s) for s in split_sentences(paragraph))
    return pairs


def window_starts(n_sentences: int, size: int, stride: int) -> list[int]:
    """Start offsets: every `stride`, plus one flush with the end if the tail was missed."""
    if n_sentences <= size:
        return [0] if n_sentences else []
    starts = list(range(0, n_sentences - size + 1, stride))
    if starts[-1] + size < n_sentences:
        starts.append(n_sentences - size)
    return starts


def window_id(article: str, start: int, end: int, text: str) -> str:
    return hashlib.sha256(f"{article}\x1f{start}\x1f{end}\x1f{text}".encode()).hexdigest()[:16]


def window_article(title: str, pairs: list[tuple[str, str]], size: int, stride: int) -> Iterator[dict]:
    """Windows over one article's (heading, sentence) pairs."""
    for start in window_starts(len(pairs), size, stride):
        chunk = pairs[start : start + size]
        sentences = [s for _, s in chunk]
        text = " ".join(sentences)
        end = start + len(chunk)
        yield {
            "id": window_id(title, start, end, text),
            "article": title,
            "section": chunk[0][0],
            "sections": list(dict.fromkeys(h for h, _ in chunk)),
            # the window begins its article or a section: broad questions fit only such windows
            "opens_section": start == 0 or pairs[start - 1][0] != chunk[0][0],
            "start": start,
            "end": end,
            "sentences": sentences,
            "text": text,
        }


def window_articles(articles: Iterable[dict], size: int, stride: int, stats: dict) -> Iterator[dict]:
    """Windows of every article in turn; `stats` counts articles, sentences and windows. A
    record that is not a clean article raises ValueError naming its number."""
    for number, article in enumerate(articles, start=1):
        if not isinstance(article, dict) or "title" not in article or not isinstance(article.get("sections"), list):
            raise ValueError(f"record {number} is not a clean article (needs title and sections)")
        stats["articles"] += 1
        pairs = article_sentences(article)
        stats["sentences"] += len(pairs)
        for window in window_article(article["title"], pairs, size, stride):
            stats["windows"] += 1
            yield window


WINDOW_FIELDS = {"id": str, "article": str, "text": str, "start": int, "sentences": list}
# What qpt_wrap also reads: which windows may take broad questions.
QPT_WINDOW_FIELDS = {**WINDOW_FIELDS, "opens_section": bool}


def check_windows(windows: list, source: str | Path, fields: dict[str, type] = WINDOW_FIELDS) -> None:
    """Raise ValueError naming the first record that is not a window as window_article writes
    it, and what it lacks, before any stage starts work on a file of them."""
    for number, window in enumerate(windows, start=1):
        if not isinstance(window, dict):
            raise ValueError(f"{source}: record {number} is not a window (a JSON object with {', '.join(fields)})")
        bad = [k for k, kind in fields.items() if not isinstance(window.get(k), kind)]
        if not bad and not all(isinstance(s, str) for s in window["sentences"]):
            bad = ["sentences (a list of strings)"]
        if bad:
            name = f" (window {window['id']})" if isinstance(window.get("id"), str) else ""
            raise ValueError(
                f"{source}: record {number}{name} is not a window: missing or wrong type: {', '.join(bad)}"
            )
