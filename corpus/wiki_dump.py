"""The dump source of the download stage: stream a pages-articles XML dump (plain or .bz2).

The dump is read page by page with mwxml (never loaded whole), pages outside the main
namespace or the title list are skipped, redirects listed in the title list are followed
to their targets, and each kept page's wikitext is stripped to prose with mwparserfromhell.
"""

from __future__ import annotations

import bz2
import collections
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import mwparserfromhell
import mwxml
from mwparserfromhell.nodes import Text

from common.progress import progress
from corpus.articles import DownloadError, split_wiki_sections

log = logging.getLogger("download.dump")

# Tags whose content is never prose: footnotes, tables, galleries, formulas.
DROP_TAGS = {
    "ref",
    "references",
    "table",
    "gallery",
    "math",
    "chem",
    "score",
    "timeline",
    "imagemap",
    "syntaxhighlight",
}
DROP_LINK_PREFIXES = ("file:", "image:", "category:", "media:")


def wikitext_to_plain(wikitext: str) -> str:
    """Wikitext to plain text, keeping section headings as `== Heading ==` lines."""
    code = mwparserfromhell.parse(wikitext)
    for node in code.filter_templates(recursive=False) + code.filter_comments(recursive=False):
        _remove(code, node)
    for tag in code.filter_tags():
        if str(tag.tag).strip().lower() in DROP_TAGS:
            _remove(code, tag)
    for link in code.filter_wikilinks():
        if str(link.title).strip().lower().startswith(DROP_LINK_PREFIXES):
            _remove(code, link)
    for heading in code.filter_headings():
        marks = "=" * heading.level
        title = heading.title.strip_code().strip()
        # A Text node, not a str: a str would be parsed back into a Heading and stripped.
        code.replace(heading, Text(f"\n{marks} {title} {marks}\n"))
    return code.strip_code(normalize=True, collapse=True)


def _remove(code, node) -> None:
    with contextlib.suppress(ValueError):  # already gone with a parent removed first
        code.remove(node)


def _open_dump(path: Path):
    if not path.exists():
        raise DownloadError(f"{path}: dump file not found (set download.dump_path)")
    return bz2.open(path, "rb") if path.suffix == ".bz2" else open(path, "rb")


def iter_main_pages(path: Path) -> Iterator[tuple[str, str | None, object]]:
    """Yield (title, redirect target or None, latest revision) for namespace-0 pages."""
    with _open_dump(path) as handle:
        try:
            dump = mwxml.Dump.from_file(handle)
            for page in dump:
                if page.namespace != 0:
                    continue
                # pages-articles holds the latest revision only; keep the last one seen
                last = collections.deque(page, maxlen=1)
                revision = last[0] if last else None
                yield page.title, page.redirect, revision
        except (OSError, EOFError, ValueError) as exc:
            raise DownloadError(f"{path}: unreadable dump: {exc}") from exc


def read_dump(path: Path, titles: list[str]) -> tuple[list[dict], list[str]]:
    """Records for the listed titles found in the dump, and the titles not found."""
    wanted = {t: t for t in titles}  # title we look for -> requested title
    found: dict[str, dict] = {}
    pending_redirects: dict[str, str] = {}
    for _ in range(2):  # a second pass only for redirect targets that came before their redirect
        for title, redirect, revision in progress(iter_main_pages(path), desc="dump", unit="page"):
            requested = wanted.get(title)
            if requested is None or requested in found:
                continue
            if redirect:
                wanted[redirect] = requested
                pending_redirects[requested] = redirect
                continue
            text = wikitext_to_plain(revision.text or "") if revision is not None else ""
            found[requested] = {
                "title": title,
                "requested_title": requested,
                "source": "dump",
                "sections": split_wiki_sections(text),
                "revision": getattr(revision, "id", None),
                "timestamp": str(revision.timestamp) if getattr(revision, "timestamp", None) else None,
                "url": None,
            }
        if not any(req not in found for req in pending_redirects):
            break
    missing = [t for t in titles if t not in found or not found[t]["sections"]]
    return [found[t] for t in titles if t in found and found[t]["sections"]], missing
