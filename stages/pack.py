"""pack: lay the tokenized records out as fixed-length training contexts.

Every split of the tokens folder (dataset/token_files.py format) is packed by dataset/pack.py
and dataset/bin_packing.py: records assigned to contexts of `context_length` tokens by
best-fit decreasing, records longer than a context split into overlapping pieces or dropped
(`long_records`), the context order shuffled with `seed`; `mode: padded` puts one record
(piece) in each context instead, the rest padding; `separate_raw` packs the train split's
raw-text records (encode.mix.raw) into contexts of their own, first, counted in meta.json
`raw_contexts` (two-phase training reads it). Each context keeps its record
boundaries (doc_ids, positions restarting at 0) and next-token targets that never cross a
record, so the trainer only slices rows: `cu_seqlens_from_positions(positions)`
(model/packing.py) gives flash-attn's boundaries and `targets`/`target_mask` go straight to
the loss.

Inputs:  data/tokens/{split}.ids.npy, .mask.npy, .offsets.npy (every split found, packed alike:
         train (required), val, recall)
Outputs: data/packed/ in the format of dataset/packed_files.py: {split}.{tokens,mask,
         positions,doc_ids,targets,target_mask}.npy (C, T), {split}.segments.npy (S, 5),
         meta.json; metrics/pack.json (contexts, useful_token_share = non-padding share, records
         split, "dropped" by reason as in common/reasons.py)

Example:
  python -m stages.pack --params params.yaml --tokens data/tokens --out data/packed \
      --metrics metrics/pack.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from common.cli import setup_logging
from common.files import atomic_dir, write_json
from common.params import ParamsError, load_section
from dataset.pack import PackError, PackParams, check_params, find_splits, plan_split, read_pad_id, write_split
from dataset.packed_files import write_meta

log = logging.getLogger("pack")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--tokens", type=Path, required=True, help="the encode stage's output folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params = load_section(args.params, "pack", PackParams)
        check_params(params, args.params)
        pad_id = read_pad_id(args.tokens)
        plans = {split: plan_split(args.tokens, split, params) for split in find_splits(args.tokens)}
        if not len(plans["train"].segments):  # checked before anything is written
            raise PackError(f"{args.tokens}: no train record can be packed (dropped: {dict(plans['train'].counts)})")
    except (ParamsError, PackError) as exc:
        log.error("%s", exc)
        return 2
    metrics: dict = {
        "context_length": params.context_length,
        "long_records": params.long_records,
        "mode": params.mode,
        "separate_raw": params.separate_raw,
    }
    with atomic_dir(args.out) as tmp:
        for split, plan in plans.items():
            metrics[split] = stats = write_split(plan, tmp, split, params.context_length, pad_id)
            log.info(
                "split=%s records=%d contexts=%d efficiency=%.4f records_split=%d dropped=%s",
                split, stats["records"], stats["contexts"], stats["efficiency"], stats["records_split"],
                json.dumps(stats["dropped"]),
            )  # fmt: skip
        contexts = {split: metrics[split]["contexts"] for split in plans}
        write_meta(tmp, params.context_length, pad_id, contexts, plans["train"].raw_contexts)
    write_json(args.metrics, metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
