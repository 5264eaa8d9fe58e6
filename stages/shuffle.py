"""shuffle: sharded file-based shuffle of JSONL records, memory bounded by one shard.

Two passes (dataset/shuffle.py has the algorithm and why it is a uniform permutation): lines
go to `shards` random shards (kept in a few spill files), then each shard is permuted and
appended to the output.
`mode: chunks` instead cuts the input into runs of `chunk_records` consecutive records and
shuffles only the order of the runs (an article's records stay together: the seed project's
first shuffle, kept to compare).
RAM holds the pass-1 write buffers (`buffer_mb`) or one shard, never the dataset. Lines are
opaque bytes (never parsed); blank lines are dropped and counted. All work happens in
`<out>.tmp/` and the output moves into place atomically, so a run killed at any point leaves
`out` as it was and a rerun gives byte-identical output.

Inputs:  data/swapped.jsonl (any number of --in; Q-PT records arrive through filter)
Outputs: data/shuffled.jsonl, metrics/shuffle.json

Example:
  python -m stages.shuffle --params params.yaml --in data/swapped.jsonl \
      --out data/shuffled.jsonl --metrics metrics/shuffle.json
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from common.cli import setup_logging
from common.files import write_json
from common.params import ParamsError, load_section
from dataset.shuffle import ShuffleError, ShuffleParams, check_params, shuffle_files

log = logging.getLogger("shuffle")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--in", dest="inputs", type=Path, action="append", required=True, help="repeatable")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params = load_section(args.params, "shuffle", ShuffleParams)
        check_params(params, args.params)
        metrics = shuffle_files(args.inputs, args.out, params)
    except (ParamsError, ShuffleError) as exc:
        log.error("%s", exc)
        return 2
    write_json(args.metrics, metrics)
    log.info(
        "mode=%s records=%d adjacent_same_article=%d expected=%.1f",
        params.mode, metrics["records"], metrics["adjacent_same_article"], metrics["adjacent_same_article_expected"],
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
