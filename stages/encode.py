"""encode: encode chat records in ChatML to token ids plus a loss mask, in three splits.

Each record's messages are rendered and encoded by dataset/chatml.py (mask 1 on the assistant
content and its `<|im_end|>`); records keep their input order (the shuffle stage already
shuffled them). Splits (dataset/encode.py): `val`, whole articles chosen by a stable hash of
(seed, title), so evaluation's `unseen` control never saw its article; `recall`, a seeded
share of every trained article's qa/contrastive question groups (a question with its
contrast-swap mirror), minus those with a near-duplicate question in train
(dataset/recall_split.py); `train`, the rest. A record that cannot be a training
conversation (no messages, wrong roles, empty content, no article, unreadable line) is
dropped and counted by reason under "dropped" (common/reasons.py).

Input:  data/tokenizer/ (spm.model), data/shuffled.jsonl (read four times: three planning
        passes, then the encoding pass)
Output: data/tokens/ ({train,val,recall}.{ids,mask,offsets}.npy, {split}.records.jsonl with
        {"id", "article"} per record in array order, meta.json; format in
        dataset/token_files.py), metrics/encode.json (per split; "recall": records, groups,
        near_duplicates_moved, near_duplicates_left, which must be 0)

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

from common.cli import setup_logging
from common.files import atomic_dir, iter_jsonl_lines, write_json
from common.params import ParamsError, load_section, read_params
from common.progress import progress
from common.reasons import Drops
from dataset.chatml import ChatEncoder
from dataset.encode import SPLITS, EncodeParams, check_params, encode_splits, plan_splits
from dataset.mix import RAW, is_default_mix, passage_tokens
from dataset.recall_split import RecallQuestionIndex
from dataset.token_files import META_FILE, SplitWriter, ids_dtype, tokens_meta
from dataset.tokenizer import Tokenizer, TokenizerError

log = logging.getLogger("encode")


class NothingToWrite(Exception):
    """Every record was dropped."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--tokenizer", type=Path, required=True, help="tokenizer folder or .model file")
    parser.add_argument("--in", dest="inp", type=Path, required=True)
    parser.add_argument(
        "--articles", type=Path, help="clean articles (data/clean/articles.jsonl): raw text when encode.mix.raw > 0"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params = load_section(args.params, "encode", EncodeParams)
        check_params(params, args.params)
        max_passage = passage_tokens(read_params(args.params), args.params) if params.mix[RAW] else 0
        tokenizer = Tokenizer.load(args.tokenizer)
    except (ParamsError, TokenizerError) as exc:
        log.error("%s", exc)
        return 2
    if not args.inp.is_file():
        log.error("%s: input not found (run the shuffle stage first)", args.inp)
        return 2
    if params.mix[RAW] and not (args.articles and args.articles.is_file()):
        log.error("encode.mix.raw=%s needs the clean articles: --articles %s not found", params.mix[RAW], args.articles)
        return 2
    encoder = ChatEncoder(tokenizer)
    dtype = ids_dtype(tokenizer.vocab_size)
    drops = Drops("encode")
    try:
        with atomic_dir(args.out) as tmp:
            passes = (
                progress(iter_jsonl_lines(args.inp), desc=f"encode plan {n}/3", unit="record", mininterval=2)
                for n in range(1, 4)
            )
            plan = plan_splits(passes, params)
            guard = RecallQuestionIndex(plan.questions, params.recall_near_dup_threshold)
            writers = {split: SplitWriter(tmp, split, dtype) for split in SPLITS}
            kept, leaked, kinds, types, raw_records = encode_splits(
                lambda desc: progress(iter_jsonl_lines(args.inp), desc=desc, unit="record"),
                lambda desc: progress(iter_jsonl_lines(args.articles), desc=desc, unit="article"),
                encoder,
                writers,
                plan,
                drops,
                guard,
                params,
                max_passage,
            )
            counts = {split: writer.close() for split, writer in writers.items()}
            if not kept:
                raise NothingToWrite
            overlap = writers["val"].articles & (writers["train"].articles | writers["recall"].articles)
            if overlap:  # impossible by construction; checked because evaluation relies on it
                raise RuntimeError(f"articles in val and in train or recall: {sorted(overlap)}")
            if leaked:  # likewise: plan_splits moved every such group back to train
                raise RuntimeError(f"{len(leaked)} recall questions have a near duplicate in train")
            splits = {split: {**counts[split], "article_titles": sorted(writers[split].articles)} for split in SPLITS}
            special_ids = {
                "im_start_id": tokenizer.im_start_id,
                "im_end_id": tokenizer.im_end_id,
                "pad_id": tokenizer.pad_id,
            }
            meta = tokens_meta(tokenizer.vocab_size, dtype, special_ids, params.val_fraction, params.seed, splits)
            meta |= {
                "recall_fraction": params.recall_fraction,
                "recall_near_dup_threshold": params.recall_near_dup_threshold,
            }
            if not is_default_mix(params.mix):  # the default mix leaves meta.json as before the mix existed
                meta |= {"mix": params.mix, "raw_records": raw_records}
            if params.type_weights:  # likewise: {} leaves meta.json as before type weights existed
                meta["type_weights"] = params.type_weights
            write_json(tmp / META_FILE, meta)
    except NothingToWrite:
        shutil.rmtree(args.out.with_name(args.out.name + ".tmp"), ignore_errors=True)
        log.error("%s: no usable records (dropped: %s)", args.inp, dict(drops))
        return 2
    tokens = sum(c["tokens"] for c in counts.values())
    masked = sum(c["masked_tokens"] for c in counts.values())
    if not counts["val"]["records"] and params.val_fraction > 0:
        log.warning("no article fell in the val split: raise encode.val_fraction or change encode.seed")
    mix = {"weights": params.mix, "train_kinds": dict(sorted(kinds.items()))}
    if params.type_weights:  # {} keeps metrics/encode.json as before type weights existed
        mix |= {"type_weights": params.type_weights, "train_types": dict(sorted(types.items()))}
        unmatched = sorted(set(params.type_weights) - set(types))
        if unmatched:  # a misspelt type, or one generate.types left out: it changes nothing
            log.warning("encode.type_weights: no train record has prompt type %s", ", ".join(unmatched))
            mix["type_weights_unmatched"] = unmatched
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
            "mix": mix,
            "recall": {
                "records": counts["recall"]["records"],
                "groups": len(plan.recall),
                "near_duplicates_moved": len(plan.moved),
                "near_duplicates_left": len(leaked),
            },
        },
    )
    log.info(
        "records=%d tokens=%d masked_share=%.3f train=%d val=%d recall=%d near_duplicates_moved=%d dropped=%s",
        kept,
        tokens,
        masked / tokens,
        counts["train"]["records"],
        counts["val"]["records"],
        counts["recall"]["records"],
        len(plan.moved),
        dict(drops),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
