"""download: get the articles the pipeline learns from, one JSON record per article.

Sources (params.yaml `download.source`; dispatched by corpus/download.py):
  sample  the shipped corpus under data/sample/ (offline default; one Markdown file per article,
          parsed by corpus/articles.py)
  api     the MediaWiki API (plain-text extracts) for the titles in data/articles.txt,
          batched, cached per title, retried with backoff (see corpus/mediawiki.py)
  dump    a local pages-articles XML dump (plain or .bz2), streamed and filtered to the
          title list, wikitext stripped to prose (see corpus/wiki_dump.py)

Output record: {"title", "source", "sections": [{"heading", "level", "text"}],
                "revision", "timestamp", "url", "requested_title"}
Metrics: articles, missing titles, and warnings (a dump that broke off: the articles read
before the break are kept). A source that cannot deliver is a one-line error, exit code 2.

Example:
  python -m stages.download --params params.yaml --sample-dir data/sample \
      --titles data/articles.txt --cache-dir data/cache/download \
      --out data/raw/articles.jsonl --metrics metrics/download.json
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from common.cli import setup_logging
from common.files import write_json, write_jsonl
from common.params import ParamsError, load_section
from common.stores import shared_path
from corpus.articles import DownloadError, DownloadParams
from corpus.download import check_params, download

log = logging.getLogger("download")


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
        check_params(params, args.params)
        args.cache_dir = shared_path(args.cache_dir)  # shared by every experiment copy
        args.cache_dir.mkdir(parents=True, exist_ok=True)
        records, missing, warnings = download(params, args.sample_dir, args.titles, args.cache_dir)
    except (DownloadError, ParamsError) as exc:
        log.error("%s", exc)
        return 2
    if not records:
        log.error("no articles downloaded (missing: %d)", len(missing))
        return 2
    if missing:
        log.warning("missing_titles=%d: %s", len(missing), "; ".join(missing))
    write_jsonl(args.out, records)
    write_json(
        args.metrics,
        {
            "source": params.source,
            "articles": len(records),
            "missing": len(missing),
            "missing_titles": missing,
            "warnings": warnings,
        },
    )
    log.info("source=%s articles=%d missing=%d out=%s", params.source, len(records), len(missing), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
