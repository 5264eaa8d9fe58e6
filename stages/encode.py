"""encode: encode chat records in ChatML to token ids plus a loss mask, split by article.

Each record's messages are rendered and encoded by dataset/chatml.py (mask 1 on the assistant
content and its `<|im_end|>`); records keep their input order (the shuffle stage already
shuffled them); an article goes to `val` by a stable hash of (seed, title), so evaluation
never sees a training article (dataset/encode.py). A record that cannot be a training
conversation (no messages, wrong roles, empty content, no article, unreadable line) is
dropped and counted by reason under "dropped" (common/reasons.py).

Input:  data/tokenizer/ (spm.model), data/shuffled.jsonl
Output: data/tokens/ ({train,val}.{ids,mask,offsets}.npy, {split}.records.jsonl, meta.json;
        format in dataset/token_files.py), metrics/encode.json

Example:
  python -m stages.encode --params params.yaml --tokenizer data/tokenizer \
      --in data/shuffled.jsonl --out data/tokens --metrics metrics/encode.json
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from tqdm import tqdm

from common.cli import setup_logging
from common.files import atomic_dir, iter_jsonl_lines, write_json
from common.params import ParamsError, load_section
from common.reasons import Drops
from dataset.chatml import ChatEncoder
from dataset.encode import EncodeParams, check_params, encode_records
from dataset.token_files import META_FILE, SPLITS, SplitWriter, ids_dtype, tokens_meta
from dataset.tokenizer import Tokenizer, TokenizerError

log = logging.getLogger("encode")


class NothingToWrite(Exception):
    """Every record was dropped."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--tokenizer", type=Path, required=True, help="tokenizer folder or .model file")
    parser.add_argument("--in", dest="inp", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params = load_section(args.params, "encode", EncodeParams)
        check_params(params, args.params)
        tokenizer = Tokenizer.load(args.tokenizer)
    except (ParamsError, TokenizerError) as exc:
        log.error("%s", exc)
        return 2
    if not args.inp.is_file():
        log.error("%s: input not found (run the shuffle stage first)", args.inp)
        return 2
    encoder = ChatEncoder(tokenizer)
    dtype = ids_dtype(tokenizer.vocab_size)
    drops = Drops("encode")
    try:
        with atomic_dir(args.out) as tmp:
            writers = {split: SplitWriter(tmp, split, dtype) for split in SPLITS}
            lines = tqdm(iter_jsonl_lines(args.inp), desc="encode", unit="record")
            kept = encode_records(lines, encoder, writers, params, drops)
            counts = {split: writer.close() for split, writer in writers.items()}
            if not kept:
                raise NothingToWrite
            overlap = writers["train"].articles & writers["val"].articles
            if overlap:  # impossible by construction; checked because evaluation relies on it
                raise RuntimeError(f"articles in both splits: {sorted(overlap)}")
            splits = {split: {**counts[split], "article_titles": sorted(writers[split].articles)} for split in SPLITS}
            special_ids = {
                "im_start_id": tokenizer.im_start_id,
                "im_end_id": tokenizer.im_end_id,
                "pad_id": tokenizer.pad_id,
            }
            meta = tokens_meta(tokenizer.vocab_size, dtype, special_ids, params.val_fraction, params.seed, splits)
            write_json(tmp / META_FILE, meta)
    except NothingToWrite:
        shutil.rmtree(args.out.with_name(args.out.name + ".tmp"), ignore_errors=True)
        log.error("%s: no usable records (dropped: %s)", args.inp, dict(drops))
        return 2
    tokens = sum(c["tokens"] for c in counts.values())
    masked = sum(c["masked_tokens"] for c in counts.values())
    if not counts["val"]["records"] and params.val_fraction > 0:
        log.warning("no article fell in the val split: raise encode.val_fraction or change encode.seed")
    write_json(
        args.metrics,
        {
            "records_in": kept + sum(drops.values()),
            "records": kept,
            "dropped": drops.as_metrics(),
            "tokens": tokens,
            "masked_tokens": masked,
            "masked_share": round(masked / tokens, 4),
            "splits": counts,
            "val_articles": splits["val"]["article_titles"],
        },
    )
    log.info(
        "records=%d tokens=%d masked_share=%.3f train=%d val=%d dropped=%s",
        kept,
        tokens,
        masked / tokens,
        counts["train"]["records"],
        counts["val"]["records"],
        dict(drops),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
