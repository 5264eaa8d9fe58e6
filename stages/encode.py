"""encode: encode chat records in ChatML to token ids plus a loss mask, split by article.

Each record's messages are rendered and encoded by dataset/chatml.py: mask 1 on the assistant
content and its `<|im_end|>`, 0 on the user turn, the role headers and the newlines. Records
keep their input order (the shuffle stage already shuffled them). The held-out split is by
article: an article goes to `val` when a hash of (seed, title) falls below `val_fraction`, so
it lands in the same split whatever other articles there are, and evaluation never sees a
training article. A record that cannot be a training conversation (no messages, wrong roles,
empty content, no article, unreadable line) is dropped and counted by reason.

Input:  data/tokenizer/ (spm.model), data/shuffled.jsonl
Output: data/tokens/ ({train,val}.{ids,mask,offsets}.npy, {split}.records.jsonl, meta.json;
        format in dataset/token_files.py), metrics/encode.json

Example:
  python -m stages.encode --params params.yaml --tokenizer data/tokenizer \
      --in data/shuffled.jsonl --out data/tokens --metrics metrics/encode.json
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from common.cli import setup_logging
from common.io import JsonlLine, atomic_dir, iter_jsonl_lines, write_json
from common.params import ParamsError, load_section
from dataset.chatml import ChatEncoder, message_problem
from dataset.tokenizer import Tokenizer, TokenizerError
from dataset.token_files import SPLITS, SplitWriter, ids_dtype

log = logging.getLogger("encode")


@dataclass(frozen=True)
class EncodeParams:
    val_fraction: float  # share of articles held out for evaluation
    seed: int  # salts the article hash: a new seed draws a new held-out set


class NothingToWrite(Exception):
    """Every record was dropped."""


def article_split(article: str, val_fraction: float, seed: int) -> str:
    """'val' or 'train' for an article, from a stable hash (not random.shuffle: membership
    must not depend on which other articles are present or on their order)."""
    digest = hashlib.sha256(f"{seed}\x1f{article}".encode()).digest()
    return "val" if int.from_bytes(digest[:8], "big") / 2**64 < val_fraction else "train"


def record_problem(record: object) -> str | None:
    """Why a record cannot be encoded (a drop reason), or None."""
    if not isinstance(record, dict):
        return "not_an_object"
    if not isinstance(record.get("article"), str) or not record["article"].strip():
        return "no_article"
    return message_problem(record.get("messages"))


def encode_records(
    lines: Iterable[JsonlLine],
    encoder: ChatEncoder,
    writers: dict[str, SplitWriter],
    params: EncodeParams,
    drops: Counter,
) -> int:
    """Encode each readable, well-formed record into its article's split; returns records kept."""
    kept = 0
    for line in lines:
        reason = line.error or record_problem(line.record)
        if reason:
            drops[reason] += 1
            log.warning("line=%d dropped reason=%s", line.lineno, reason)
            continue
        record = line.record
        ids, mask = encoder.encode(record["messages"])
        split = article_split(record["article"], params.val_fraction, params.seed)
        writers[split].add(ids, mask, str(record.get("id", line.lineno)), record["article"])
        kept += 1
    return kept


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
        if not 0.0 <= params.val_fraction < 1.0:
            raise ParamsError(f"{args.params}:encode.val_fraction: must be in [0, 1), got {params.val_fraction}")
        tokenizer = Tokenizer.load(args.tokenizer)
    except (ParamsError, TokenizerError) as exc:
        log.error("%s", exc)
        return 2
    if not args.inp.is_file():
        log.error("%s: input not found (run the shuffle stage first)", args.inp)
        return 2
    encoder = ChatEncoder(tokenizer)
    dtype = ids_dtype(tokenizer.vocab_size)
    drops: Counter = Counter()
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
            write_json(
                tmp / "meta.json",
                {
                    "vocab_size": tokenizer.vocab_size,
                    "dtype": dtype.name,
                    "im_start_id": tokenizer.im_start_id,
                    "im_end_id": tokenizer.im_end_id,
                    "pad_id": tokenizer.pad_id,
                    "val_fraction": params.val_fraction,
                    "seed": params.seed,
                    "splits": splits,
                },
            )
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
            "dropped": dict(sorted(drops.items())),
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
