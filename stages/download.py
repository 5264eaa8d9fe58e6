"""download: get the articles the pipeline learns from, one JSON record per article.

Sources (params.yaml `download.source`):
  sample  the shipped corpus under data/sample/ (offline default; one Markdown file per article)
  api     the MediaWiki API (plain-text extracts) for the titles in data/articles.txt,
          batched, cached per title, retried with backoff (see corpus/mediawiki.py)
  dump    a local pages-articles XML dump (plain or .bz2), streamed and filtered to the
          title list, wikitext stripped to prose (see corpus/wiki_dump.py)

Output record: {"title", "source", "sections": [{"heading", "level", "text"}],
                "revision", "timestamp", "url", "requested_title"}

Example:
  python -m stages.download --params params.yaml --sample-dir data/sample \
      --titles data/articles.txt --cache-dir data/cache/download \
      --out data/raw/articles.jsonl --metrics metrics/download.json
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from common.cli import setup_logging
from common.io import write_json, write_jsonl
from common.params import ParamsError, load_section

log = logging.getLogger("download")

SOURCES = ("sample", "api", "dump")
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
    files = sorted(sample_dir.glob("*.md"))
    if not files:
        raise DownloadError(f"{sample_dir}: no sample articles (*.md) found")
    return [parse_sample_article(f.read_text(encoding="utf-8"), str(f)) for f in files]


def read_titles(path: Path) -> list[str]:
    """One title per line; blank lines and `#` comments ignored; duplicates dropped."""
    if not path.exists():
        raise DownloadError(f"{path}: title list not found")
    seen: dict[str, None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--sample-dir", type=Path, default=Path("data/sample"))
    parser.add_argument("--titles", type=Path, default=Path("data/articles.txt"))
    parser.add_argument("--cache-dir", type=Path, default=Path("data/cache/download"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params = load_section(args.params, "download", DownloadParams)
        if params.source not in SOURCES:
            raise ParamsError(f"{args.params}:download.source: {params.source!r} is not one of {', '.join(SOURCES)}")
        args.cache_dir.mkdir(parents=True, exist_ok=True)
        missing: list[str] = []
        if params.source == "sample":
            records = load_sample(args.sample_dir)
        elif params.source == "api":
            from corpus.mediawiki import fetch_titles

            records, missing = fetch_titles(read_titles(args.titles), params, args.cache_dir / "api")
        else:
            from corpus.wiki_dump import read_dump

            records, missing = read_dump(Path(params.dump_path), read_titles(args.titles))
    except (DownloadError, ParamsError) as exc:
        log.error("%s", exc)
        return 2
    records = unique_by_title(records)
    if not records:
        log.error("no articles downloaded (missing: %d)", len(missing))
        return 2
    if missing:
        log.warning("missing_titles=%d: %s", len(missing), "; ".join(missing))
    write_jsonl(args.out, records)
    write_json(
        args.metrics,
        {"source": params.source, "articles": len(records), "missing": len(missing), "missing_titles": missing},
    )
    log.info("source=%s articles=%d missing=%d out=%s", params.source, len(records), len(missing), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
