"""contrast_swap: give every binary-choice contrastive record its mirror with the options swapped.

Generators put the correct option first ("Who commanded the 6th Army at Stalingrad, Paulus or
Rommel?"), so a model could learn "the first option is right". For each contrastive record we
keep the original and add one mirror whose question lists the options the other way round,
with the same answer, reversed `meta.options` and flipped `meta.correct`. Each kept record
and its mirror have opposite orders, so the correct option comes first in exactly half of
the contrastive output; the stage checks this and fails if it does not hold.

Locating the options: an option is matched as a whole span (case-insensitive, word
boundaries, any run of spaces/punctuation between its words), so "Paul" does not match
inside "Paulus" and "Rommel" matches in "Rommel's". The choice is the *last* place where one
option is followed by the other with "or" between them ("X or Y", "X, or was it Y"): only
those two spans are swapped, never other mentions ("Was it Rommel, or was it Paulus, who
... Rommel's ...?" keeps the later "Rommel's"). Contained options ("Army" vs "6th Army")
work because spans of the two options are paired, not searched and replaced.

`meta.options` of the original is put in the order the question presents them (counted
as options_reordered when the generator's order differed), so `options[0]` is always the
option asked first. A question that occurs in both orders with the same answer in the
input is kept once (dedupe key: the normalised question in canonical order + answer).
Contrastive records that cannot be mirrored are dropped with a counted reason; other
records pass through unchanged and in order. The logic is synth/contrast_swap.py.
`contrast_swap.mirror: false` keeps the originals without mirrors (the seed's data, where the
correct option came first: the recipe `contrastive-no-swap`).

Input:  data/deduped.jsonl
Output: data/swapped.jsonl, metrics/contrast_swap.json (drop reasons under "dropped")

Example:
  python -m stages.contrast_swap --params params.yaml --in data/deduped.jsonl --out data/swapped.jsonl \
      --metrics metrics/contrast_swap.json
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

from common.cli import setup_logging
from common.files import JsonlError, iter_jsonl_lines, write_json, write_jsonl
from common.params import ParamsError, load_section
from common.progress import progress
from common.reasons import Drops
from synth.contrast_swap import ContrastSwapParams, order_metrics, swap_records

log = logging.getLogger("contrast_swap")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--in", dest="inp", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    stats: Counter = Counter()
    drops = Drops("contrast_swap")
    try:
        params = load_section(args.params, "contrast_swap", ContrastSwapParams)
        lines = progress(iter_jsonl_lines(args.inp), desc="contrast_swap", unit="record")
        records = list(swap_records(lines, str(args.inp), stats, drops, params.mirror))
    except (ParamsError, JsonlError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    # With mirrors, raises if the 50% invariant is broken: never write such a file.
    order = order_metrics(records, balanced=params.mirror)
    write_jsonl(args.out, records)
    metrics = {
        "records_in": stats["records_in"],
        "records_out": len(records),
        "passed_through": stats["passed_through"],
        "contrastive_in": stats["contrastive_in"],
        "mirrors_made": stats["mirrors_made"],
        "options_reordered": stats["options_reordered"],
        "dropped": drops.as_metrics(),
        **order,
    }
    write_json(args.metrics, metrics)
    log.info(
        "records_in=%d contrastive_in=%d mirrors=%d dropped=%s correct_first_share=%s",
        stats["records_in"],
        stats["contrastive_in"],
        stats["mirrors_made"],
        drops.as_metrics(),
        order["correct_first_share"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
