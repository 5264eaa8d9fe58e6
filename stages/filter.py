"""filter: keep the records whose every text field is clean English and a real answer.

Every record kind that reaches training passes here: the generated records and the Q-PT
records (a window of a German article must not become an answer).

Each record is checked field by field (every message's content and the text in `meta`, e.g.
contrastive options); the first failing check rejects it:
- structure: empty field, runaway length, leftover `<think>`, chat tags, markdown/HTML/wiki
  markup or reply labels ("Answer:"), an answer that repeats its question;
- content: a bare NONE, a refusal ("As an AI language model..."), text that talks about its
  source ("according to the passage");
- language, by `filter.mode`: `default` (script allow-list, function words, lingua with the
  names masked: see quality/language.py) or `seed` (the seed project's rule: lingua
  English confidence exactly 1.0 against Chinese, no U+4E00–U+9FFF).
Language checks run in batches of `batch_size` records through lingua's parallel API.
The logic is quality/filter.py; each rejection's check is its drop reason (common/reasons.py).

Every run also scores both modes on a labelled evaluation set (English QA strings and
contaminated ones), so `dvc metrics diff` shows false-reject and false-accept rates.

Input:  data/generated.jsonl and data/qpt.jsonl (each a --in), data/filter_eval.jsonl (text,
        label en|contaminated, kind)
Output: data/filtered.jsonl (kept records, unchanged), data/filter_rejects/<check>.jsonl
        (each rejected record plus stage, field, check, detail), metrics/filter.json
        ("dropped": {check: count}, as every stage; "rejected_by_check" is the same tally)

Example:
  python -m stages.filter --params params.yaml --in data/generated.jsonl --in data/qpt.jsonl \
      --out data/filtered.jsonl --rejects data/filter_rejects \
      --eval data/filter_eval.jsonl --metrics metrics/filter.json
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
from collections import Counter
from pathlib import Path

from common.cli import setup_logging
from common.files import JsonlError, atomic_dir, iter_jsonl_lines, read_jsonl, write_json, write_jsonl
from common.params import ParamsError, load_section
from common.progress import progress
from common.reasons import Drops
from quality.filter import (
    FilterParams,
    build_judges,
    check_eval_rows,
    check_params,
    evaluate,
    filter_lines,
    rejects_by_file,
)

log = logging.getLogger("filter")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument(
        "--in",
        dest="inputs",
        type=Path,
        action="append",
        required=True,
        help="records to filter; repeat for each file (generated and Q-PT records both reach training)",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rejects", type=Path, required=True, help="folder of rejected records, one file per check")
    parser.add_argument("--eval", type=Path, default=None, help="labelled evaluation set (JSONL)")
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params = load_section(args.params, "filter", FilterParams)
        check_params(params, args.params)
        judges = build_judges(params)
        eval_rows = check_eval_rows(list(read_jsonl(args.eval)), str(args.eval)) if args.eval else []
    except (ParamsError, JsonlError, FileNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    missing = [str(path) for path in args.inputs if not path.exists()]
    if missing:
        log.error("%s: input not found (run the generate and qpt_wrap stages first)", ", ".join(missing))
        return 2
    lines = itertools.chain.from_iterable(iter_jsonl_lines(path) for path in args.inputs)
    first = next(lines, None)
    if first is None:
        log.error("%s: input is empty: no records to filter", ", ".join(map(str, args.inputs)))
        return 2
    # Streamed: only the rejects are held in memory, the kept records go straight to disk.
    rejected: list[dict] = []
    drops = Drops("filter", level=logging.DEBUG)  # rejects are many and kept on disk: log at debug
    records = progress(itertools.chain([first], lines), desc=f"filter ({params.mode})", unit="record", mininterval=5.0)
    kept = write_jsonl(args.out, filter_lines(records, judges[params.mode], params, rejected, drops))
    with atomic_dir(args.rejects) as tmp:
        for name, records in rejects_by_file(rejected).items():
            write_jsonl(tmp / name, records)
    metrics = {
        "mode": params.mode,
        "records_in": kept + len(rejected),
        "records_out": kept,
        "rejected": len(rejected),
        "dropped": drops.as_metrics(),
        "rejected_by_check": drops.as_metrics(),
        "rejected_by_field": dict(sorted(Counter(r["field"] or "record" for r in rejected).items())),
        "rejected_by_kind": dict(sorted(Counter(str(r.get("kind", "unreadable")) for r in rejected).items())),
        "eval": evaluate(eval_rows, judges) if eval_rows else {},
    }
    write_json(args.metrics, metrics)
    log.info("records_in=%d records_out=%d rejected=%s", metrics["records_in"], kept, dict(drops))
    for mode, scores in metrics["eval"].items():
        log.info(
            "eval mode=%s false_reject_rate=%.4f false_accept_rate=%.4f",
            mode,
            scores["false_reject_rate"],
            scores["false_accept_rate"],
        )
    if not kept:
        log.error("%s: every record was rejected: see %s", ", ".join(map(str, args.inputs)), args.rejects)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
