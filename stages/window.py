"""window: split articles into sentences and emit overlapping windows of sentences.

Windows of `size` sentences advance by `stride` inside one article (never across two); the
last window is aligned to the article's end so no tail sentence is left out. Each window
records its article, section(s), sentence offsets and a stable id (hash of article, offsets
and text), so every later record can cite the text it came from. Logic: corpus/windows.py.

Input:  data/clean/articles.jsonl
Output: data/windows.jsonl, metrics/window.json

Example:
  python -m stages.window --params params.yaml --in data/clean/articles.jsonl \
      --out data/windows.jsonl --metrics metrics/window.json
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from common.cli import setup_logging
from common.files import JsonlError, read_jsonl, write_json, write_jsonl
from common.params import ParamsError, load_section
from common.progress import progress
from corpus.windows import WindowParams, check_params, window_articles

log = logging.getLogger("window")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--in", dest="inp", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params = load_section(args.params, "window", WindowParams)
        check_params(params, args.params)
        articles = list(read_jsonl(args.inp))
    except (ParamsError, JsonlError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    stats = {"articles": 0, "sentences": 0, "windows": 0}
    windows = window_articles(progress(articles, desc="window", unit="article"), params.size, params.stride, stats)
    try:
        write_jsonl(args.out, windows)
    except ValueError as exc:
        log.error("%s: %s", args.inp, exc)
        return 2
    write_json(args.metrics, stats)
    log.info("articles=%d sentences=%d windows=%d", stats["articles"], stats["sentences"], stats["windows"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
