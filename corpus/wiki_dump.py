"""The dump source of the download stage: stream a pages-articles XML dump (plain or .bz2).

The dump is read page by page with mwxml (never loaded whole), pages outside the main
namespace or the title list are skipped, redirects listed in the title list are followed
to their targets, and each kept page's wikitext is stripped to prose with mwparserfromhell
(text-bearing templates rendered by corpus/wiki_templates.py, the others dropped).
"""

from __future__ import annotations

import bz2
import collections
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from xml.etree.ElementTree import ParseError

import mwparserfromhell
import mwxml
from mwparserfromhell.nodes import Text
from mwxml.errors import MalformedXML

from common.progress import progress
from corpus.articles import DownloadError, split_wiki_sections
from corpus.wiki_templates import render_templates

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
    for comment in code.filter_comments():
        _remove(code, comment)
    for tag in code.filter_tags():
        if str(tag.tag).strip().lower() in DROP_TAGS:
            _remove(code, tag)
    for link in code.filter_wikilinks():
        if str(link.title).strip().lower().startswith(DROP_LINK_PREFIXES):
            _remove(code, link)
    render_templates(code)  # after the drops: a citation inside a <ref> goes with its tag
    for heading in code.filter_headings():
        marks = "=" * heading.level
        title = heading.title.strip_code().strip()
        # A Text node, not a str: a str would be parsed back into a Heading and stripped.
        code.replace(heading, Text(f"\n{marks} {title} {marks}\n"))
    return code.strip_code(normalize=True, collapse=True)


def _remove(code, node) -> None:
    with contextlib.suppress(ValueError):  # already gone with a parent removed first
        code.remove(node)


def normalise_title(title: str) -> str:
    """A title as MediaWiki stores it: underscores are spaces, runs of spaces one, no
    fragment, first letter upper case (the "first-letter" case of the main namespace;
    https://www.mediawiki.org/wiki/Manual:Page_title)."""
    title = " ".join(title.split("#", 1)[0].replace("_", " ").split())
    return title[:1].upper() + title[1:]


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
        except (OSError, EOFError, ValueError, ParseError, MalformedXML) as exc:
            raise DownloadError(f"{path}: unreadable dump: {exc}") from exc
        except (AssertionError, AttributeError, KeyError, TypeError) as exc:
            # mwxml meets XML of another shape (another root, a page without a title) with these;
            # only its parsing runs inside this try: the caller's loop body runs outside the generator
            raise DownloadError(
                f"{path}: not a MediaWiki XML dump, or a malformed page in it ({type(exc).__name__}: {exc})"
            ) from exc


def page_record(title: str, revision) -> dict:
    text = wikitext_to_plain(revision.text or "") if revision is not None else ""
    return {
        "title": title,
        "requested_title": title,
        "source": "dump",
        "sections": split_wiki_sections(text),
        "revision": getattr(revision, "id", None),
        "timestamp": str(revision.timestamp) if getattr(revision, "timestamp", None) else None,
        "url": None,
    }


def read_dump(path: Path, titles: list[str]) -> tuple[list[dict], list[str], list[str]]:
    """(records for the listed titles found in the dump, titles not found, warnings).

    Titles match as MediaWiki normalises them; a listed redirect gives its target's article,
    also when the target is listed too. A dump that breaks off after some pages keeps what was
    read and says so in a warning; one that gives no page at all is a DownloadError."""
    requested_by: dict[str, list[str]] = collections.defaultdict(list)  # page title -> requested titles
    for title in titles:
        requested_by[normalise_title(title)].append(title)
    found: dict[str, dict] = {}
    redirected: set[str] = set()
    warnings: list[str] = []
    pages_read = 0
    for _ in range(2):  # a second pass only for redirect targets that came before their redirect
        try:
            for title, redirect, revision in progress(iter_main_pages(path), desc="dump", unit="page"):
                pages_read += 1
                waiting = [r for r in requested_by.get(title, []) if r not in found]
                if not waiting:
                    continue
                if redirect:
                    target = requested_by[normalise_title(redirect)]
                    target.extend(r for r in waiting if r not in target)
                    redirected.update(waiting)
                    continue
                record = page_record(title, revision)
                for requested in waiting:
                    found[requested] = {**record, "requested_title": requested}
        except DownloadError as exc:
            if not pages_read:
                raise
            warnings.append(f"dump truncated after {pages_read} pages, kept what was read before it: {exc}")
            log.warning("%s", warnings[-1])
            break
        if redirected <= found.keys():
            break
    missing = [t for t in titles if t not in found or not found[t]["sections"]]
    return [found[t] for t in titles if t in found and found[t]["sections"]], missing, warnings
