"""Where the download stage's articles come from: one dispatch over the three sources.

sample  the shipped corpus under data/sample/ (offline default; corpus/articles.py)
api     the MediaWiki API, batched, cached per title, retried (corpus/mediawiki.py)
dump    a local pages-articles XML dump, plain or .bz2 (corpus/wiki_dump.py)
"""

from __future__ import annotations

from pathlib import Path

from common.params import ParamsError
from corpus.articles import DownloadParams, load_sample, read_titles, unique_by_title
from corpus.mediawiki import fetch_titles
from corpus.wiki_dump import read_dump

SOURCES = ("sample", "api", "dump")
MAX_TITLES_PER_QUERY = 50  # the API refuses more titles per request (500 with the apihighlimits right)


def check_params(params: DownloadParams, where: str) -> None:
    if params.source not in SOURCES:
        raise ParamsError(f"{where}:download.source: {params.source!r} is not one of {', '.join(SOURCES)}")
    checks = [
        ("batch_size", 1 <= params.batch_size <= MAX_TITLES_PER_QUERY, f"must be in 1..{MAX_TITLES_PER_QUERY}"),
        ("max_retries", params.max_retries >= 0, "must be >= 0"),
        ("backoff_seconds", params.backoff_seconds >= 0, "must be >= 0"),
        ("max_backoff_seconds", params.max_backoff_seconds >= params.backoff_seconds, "must be >= backoff_seconds"),
        ("timeout_seconds", params.timeout_seconds > 0, "must be > 0"),
        ("min_interval_seconds", params.min_interval_seconds >= 0, "must be >= 0"),
    ]
    for key, ok, expected in checks:
        if not ok:
            raise ParamsError(f"{where}:download.{key}: {expected}, got {getattr(params, key)!r}")


def download(
    params: DownloadParams, sample_dir: Path, titles: Path, cache_dir: Path
) -> tuple[list[dict], list[str], list[str]]:
    """(records unique by final title, requested titles the source lacks, warnings) from
    `params.source`; a warning says what was delivered only in part (a truncated dump).

    The title list is read by api and dump only; api caches each article under `cache_dir`/api.
    Raises DownloadError when a source cannot deliver.
    """
    missing: list[str] = []
    warnings: list[str] = []
    if params.source == "sample":
        records = load_sample(sample_dir)
    elif params.source == "api":
        records, missing = fetch_titles(read_titles(titles), params, cache_dir / "api")
    else:
        records, missing, warnings = read_dump(Path(params.dump_path), read_titles(titles))
    return unique_by_title(records), missing, warnings
