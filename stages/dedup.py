"""dedup: remove generated records that repeat an earlier record of their prompt type.

Near duplicate (quality/near_duplicates.py, the one definition the encode stage's recall
guard uses too): Jaccard >= `dedup.threshold` over word 3-grams or 5-character shingles of
the record's question and answer, found with MinHash LSH (datasketch) and confirmed exactly.
Only qa and contrastive records are compared, each with the earlier ones of its prompt type;
the first is kept (quality/dedup.py says why). Q-PT records pass through.

Also reported, not removed: near duplicates left across prompt types, and evaluation questions
with a near-duplicate training question: records of the held-out (`unseen`) articles, chosen
as the encode stage chooses them (encode.val_fraction, encode.seed), and the exam questions.
The recall split is guarded by the encode stage itself (metrics/encode.json).

Input:  data/filtered.jsonl, data/exams/*.jsonl
Output: data/deduped.jsonl (kept records, in input order), metrics/dedup.json (records in and
        out, removed per prompt type, "dropped": {"near_duplicate": n}, near duplicates left,
        near duplicates between training and evaluation questions)

Example:
  python -m stages.dedup --params params.yaml --in data/filtered.jsonl --exams data/exams \
      --out data/deduped.jsonl --metrics metrics/dedup.json
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter, defaultdict
from pathlib import Path

from common.cli import setup_logging
from common.files import JsonlError, read_jsonl, write_json, write_jsonl
from common.params import ParamsError, load_section, read_params
from common.progress import progress
from common.reasons import Drops
from dataset.recall_split import article_split
from evaluation.exam import ExamError, exam_files, read_exam_items
from quality.dedup import DedupParams, check_params, check_records, dedup_records, near_duplicates_left, split_overlap

log = logging.getLogger("dedup")


def held_out_params(params: dict, where: object) -> tuple[float, int]:
    """encode.val_fraction and encode.seed: which articles the encode stage holds out."""
    encode = params.get("encode") if isinstance(params.get("encode"), dict) else {}
    fraction, seed = encode.get("val_fraction"), encode.get("seed")
    if not isinstance(fraction, int | float) or isinstance(fraction, bool) or not 0 <= fraction < 1:
        raise ParamsError(f"{where}:encode.val_fraction: needed to report the unseen split, got {fraction!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ParamsError(f"{where}:encode.seed: needed to report the unseen split, got {seed!r}")
    return float(fraction), seed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--in", dest="inp", type=Path, required=True)
    parser.add_argument("--exams", type=Path, required=True, help="folder of exam files (*.jsonl)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params = load_section(args.params, "dedup", DedupParams)
        check_params(params, args.params)
        val_fraction, split_seed = held_out_params(read_params(args.params), args.params)
        records = list(read_jsonl(args.inp))
        check_records(records, args.inp)
        exams = read_exam_items((f.name, read_jsonl(f)) for f in exam_files(args.exams))
    except (ParamsError, JsonlError, ExamError, FileNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    drops = Drops("dedup", level=logging.DEBUG)  # many, and counted per type below
    per_type: dict[str, Counter] = defaultdict(Counter)
    bar = progress(records, desc="dedup", unit="record", mininterval=5.0)
    kept = list(dedup_records(bar, params.threshold, drops, per_type))
    write_jsonl(args.out, kept)
    left = near_duplicates_left(kept, params.threshold)

    def held_out(title: str) -> bool:
        return article_split(title, val_fraction, split_seed) == "val"

    overlap = split_overlap(kept, [item["question"] for item in exams], held_out, params.threshold)
    compared = sum(c["in"] for c in per_type.values())
    removed = sum(c["removed"] for c in per_type.values())
    metrics = {
        "threshold": params.threshold,
        "records_in": len(records),
        "records_out": len(kept),
        "compared": compared,
        "removed": removed,
        "removed_share": round(removed / compared, 4) if compared else 0.0,
        "dropped": drops.as_metrics(),
        "per_type": {name: dict(sorted(c.items())) for name, c in sorted(per_type.items())},
        "left": {
            "same_type": left.get("same_type", 0),
            "any_type": left.get("any_type", 0),
            "any_type_share": round(left.get("any_type", 0) / left["records"], 4) if left.get("records") else 0.0,
        },
        "train_vs_eval": overlap,
    }
    write_json(args.metrics, metrics)
    log.info(
        "records_in=%d records_out=%d removed=%d share=%.4f left_any_type=%d unseen_near_train=%d exam_near_train=%d",
        len(records),
        len(kept),
        removed,
        metrics["removed_share"],
        metrics["left"]["any_type"],
        overlap["unseen"]["near_duplicates_in_train"],
        overlap["exam"]["near_duplicates_in_train"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
