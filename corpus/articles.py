"""What every download source shares: its params, its error, the article record, the
shipped sample corpus and the title list.

Record: {"title", "requested_title", "source", "sections": [{"heading", "level", "text"}],
         "revision", "timestamp", "url"}

A section list comes from plain text with `== Heading ==` lines (split_wiki_sections), the
form the MediaWiki API's extracts, a stripped dump page and a sample file all reduce to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

WIKI_HEADING = re.compile(r"^(={2,6})\s*(.+?)\s*\1\s*$")


@dataclass(frozen=True)
class DownloadParams:
    source: str  # sample | api | dump
    api_url: str  # MediaWiki api.php endpoint
    user_agent: str  # Wikimedia asks for a descriptive agent with contact info
    batch_size: int  # titles per API request (the API caps titles at 50)
    max_retries: int  # per request, on 429/5xx/timeouts/connection errors
    backoff_seconds: float  # first retry wait; doubles each attempt unless Retry-After says
    max_backoff_seconds: float
    timeout_seconds: float
    min_interval_seconds: float  # politeness: least time between two requests
    dump_path: str  # pages-articles .xml or .xml.bz2 for source=dump


class DownloadError(RuntimeError):
    """A source cannot deliver (bad sample file, API gave up, unreadable dump)."""


def split_wiki_sections(text: str) -> list[dict]:
    """Split plain text with `== Heading ==` lines into sections; the lead has heading ""."""
    sections = [{"heading": "", "level": 1, "lines": []}]
    for line in text.splitlines():
        match = WIKI_HEADING.match(line.strip())
        if match:
            sections.append({"heading": match.group(2), "level": len(match.group(1)), "lines": []})
        else:
            sections[-1]["lines"].append(line)
    result = []
    for section in sections:
        body = "\n".join(section["lines"]).strip()
        body = re.sub(r"\n{3,}", "\n\n", body)
        if body or section["heading"]:
            result.append({"heading": section["heading"], "level": section["level"], "text": body})
    return [s for s in result if s["text"]]


def parse_sample_article(markdown: str, name: str) -> dict:
    """Parse one shipped sample file: `# Title`, lead paragraphs, `## Section` blocks."""
    lines = markdown.splitlines()
    if not lines or not lines[0].startswith("# "):
        raise DownloadError(f"{name}: first line must be '# <title>'")
    title = lines[0][2:].strip()
    body = "\n".join(
        re.sub(r"^(#{2,6})\s+(.+)$", lambda m: f"{'=' * len(m.group(1))} {m.group(2)} {'=' * len(m.group(1))}", line)
        for line in lines[1:]
    )
    sections = split_wiki_sections(body)
    if not sections:
        raise DownloadError(f"{name}: article '{title}' has no text")
    return {
        "title": title,
        "requested_title": title,
        "source": "sample",
        "sections": sections,
        "revision": None,
        "timestamp": None,
        "url": None,
    }


def load_sample(sample_dir: Path) -> list[dict]:
    """Every `*.md` file of the sample folder, in name order."""
    files = sorted(sample_dir.glob("*.md"))
    if not files:
        raise DownloadError(f"{sample_dir}: no sample articles (*.md) found")
    return [parse_sample_article(read_utf8(f), str(f)) for f in files]


def read_utf8(path: Path) -> str:
    """A text file's contents; bytes that are not UTF-8 are a DownloadError naming the file."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DownloadError(
            f"{path}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from exc


def read_titles(path: Path) -> list[str]:
    """One title per line; blank lines and `#` comments ignored; duplicates dropped."""
    if not path.exists():
        raise DownloadError(f"{path}: title list not found")
    seen: dict[str, None] = {}
    for line in read_utf8(path).splitlines():
        title = line.strip()
        if title and not title.startswith("#"):
            seen.setdefault(title, None)
    if not seen:
        raise DownloadError(f"{path}: title list is empty")
    return list(seen)


def unique_by_title(records: list[dict]) -> list[dict]:
    """Two requested titles can redirect to one article: keep it once."""
    seen: set[str] = set()
    result = []
    for record in records:
        if record["title"] not in seen:
            seen.add(record["title"])
            result.append(record)
    return result
