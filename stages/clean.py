"""clean: strip citation marks, reference sections and markup leftovers; normalise text.

Input:  data/raw/articles.jsonl (download records)
Output: data/clean/articles.jsonl (same shape, cleaned sections) and metrics/clean.json
        with every dropped article, section and paragraph counted by reason.

Hard-wrapped lines (books, speeches) are joined into paragraphs, a blank line ending one;
wiki, HTML and Markdown leftovers go but link text and emphasised words stay; list items
that are sentences stay, link lists and captions go. The cleaning rules live in
corpus/clean.py (lines and paragraphs) and corpus/markup.py (markup).

A broken line (invalid UTF-8 or JSON, no title, no text) costs that article only: it is
counted under "dropped" by reason (common/reasons.py) and logged, and the other articles go on.

Example:
  python -m stages.clean --params params.yaml --in data/raw/articles.jsonl \
      --out data/clean/articles.jsonl --metrics metrics/clean.json
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

from common.cli import setup_logging
from common.files import iter_jsonl_lines, write_json, write_jsonl
from common.params import ParamsError, load_section
from common.reasons import Drops
from corpus.clean import CleanParams, clean_articles

log = logging.getLogger("clean")


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
    drops = Drops("clean")
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
            "dropped": drops.as_metrics(),
            "removed": dict(sorted(counts.items())),
            "chars_out": sum(a["chars"] for a in articles),
        },
    )
    log.info("articles_in=%d articles_out=%d dropped=%s", len(lines), len(articles), dict(drops))
    return 0


if __name__ == "__main__":
    sys.exit(main())
