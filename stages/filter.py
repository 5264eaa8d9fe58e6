"""filter: keep the generated records whose every text field is clean English.

Each record is checked field by field (every message's content and the text in `meta`, e.g.
contrastive options); the first failing check rejects it:
- structure: empty field, runaway length, leftover `<think>`, chat tags, markdown/HTML/wiki
  markup or reply labels ("Answer:"), an answer that repeats its question;
- language, by `filter.mode`: `default` (script allow-list, function words, lingua with the
  names masked: see quality/language.py) or `seed` (the seed project's rule: lingua
  English confidence exactly 1.0 against Chinese, no U+4E00–U+9FFF).
Language checks run in batches of `batch_size` records through lingua's parallel API.

Every run also scores both modes on a labelled evaluation set (English QA strings and
contaminated ones), so `dvc metrics diff` shows false-reject and false-accept rates.

Input:  data/generated.jsonl, data/filter_eval.jsonl (text, label en|contaminated, kind)
Output: data/filtered.jsonl (kept records, unchanged), data/filter_rejects/<check>.jsonl
        (each rejected record plus stage, field, check, detail), metrics/filter.json

Example:
  python -m stages.filter --params params.yaml --in data/generated.jsonl \
      --out data/filtered.jsonl --rejects data/filter_rejects \
      --eval data/filter_eval.jsonl --metrics metrics/filter.json
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lingua import Language
from tqdm import tqdm

from common.cli import setup_logging
from common.io import JsonlError, atomic_dir, iter_jsonl_lines, read_jsonl, write_json, write_jsonl
from common.params import ParamsError, load_section
from quality.language import DefaultJudge, SeedJudge
from quality.structure import Rejection, structure_rejection, text_fields

log = logging.getLogger("filter")
MODES = ("default", "seed")


@dataclass(frozen=True)
class FilterParams:
    mode: str  # default | seed (the seed project's rule, kept for comparison)
    languages: tuple[str, ...]  # default mode's lingua detector: English + the languages to catch
    min_margin: float  # default: lingua must prefer another language by this much to reject
    masked_min_words: int  # default: words left after masking names before that view counts alone
    english_override: int  # default: a sentence with this many English function words is English
    seed_min_confidence: float  # seed: English confidence a text needs (the seed used 1.0)
    max_chars: int  # runaway length: a longer field is rejected
    batch_size: int  # records per lingua batch
    skip_meta_keys: tuple[str, ...]  # meta keys holding labels, not text (generator, mode, family...)


def check_params(params: FilterParams, where: str) -> None:
    if params.mode not in MODES:
        raise ParamsError(f"{where}:filter.mode: {params.mode!r} is not one of {', '.join(MODES)}")
    for name in params.languages:
        try:
            Language.from_str(name)
        except ValueError:
            raise ParamsError(
                f"{where}:filter.languages: unknown language {name!r} (lingua names: GERMAN, BOKMAL...)"
            ) from None
    if "ENGLISH" not in params.languages:
        raise ParamsError(f"{where}:filter.languages: must include ENGLISH")


def build_judges(params: FilterParams) -> dict[str, DefaultJudge | SeedJudge]:
    """Both modes' judges (the evaluation scores both); lingua detectors are cached per process."""
    return {
        "default": DefaultJudge(params.languages, params.min_margin, params.masked_min_words, params.english_override),
        "seed": SeedJudge(params.seed_min_confidence),
    }


def judge_records(records: Sequence, judge, params: FilterParams, parallel: bool = True) -> list[Rejection | None]:
    """The first failing check of each record (None = keep); one lingua batch for all."""
    results: list[Rejection | None] = [None] * len(records)
    texts, owners = [], []
    for k, record in enumerate(records):
        fields = text_fields(record, params.skip_meta_keys)
        results[k] = structure_rejection(record, fields, params.max_chars)
        if results[k] is None:
            for path, text in fields:
                texts.append(text)
                owners.append((k, path))
    for (k, path), verdict in zip(owners, judge.judge(texts, parallel=parallel), strict=True):
        if verdict and results[k] is None:  # fields come in order: the first failure wins
            results[k] = Rejection(path, verdict.check, verdict.detail)
    return results


def filter_lines(lines: Iterable, judge, params: FilterParams, rejected: list[dict]) -> Iterator[dict]:
    """Kept records of a stream of JsonlLine; rejects (tagged) and unreadable lines go to `rejected`."""
    batch: list = []

    def flush() -> Iterator[dict]:
        records = [line.record for line in batch]
        for line, record, rejection in zip(batch, records, judge_records(records, judge, params), strict=True):
            if rejection is None:
                yield record
                continue
            tags = {"stage": "filter", "field": rejection.field, "check": rejection.check, "detail": rejection.detail}
            rejected.append({**record, **tags} if isinstance(record, dict) else {"record": record, **tags})
            log.debug("line=%d rejected check=%s field=%s", line.lineno, rejection.check, rejection.field)
        batch.clear()

    for line in lines:
        if line.error:
            log.warning("line=%d unreadable reason=%s", line.lineno, line.error)
            rejected.append(
                {"stage": "filter", "field": None, "check": f"input:{line.error}", "detail": f"line {line.lineno}"}
            )
            continue
        batch.append(line)
        if len(batch) >= params.batch_size:
            yield from flush()
    yield from flush()


def evaluate(rows: list[dict], judges: dict) -> dict:
    """False-reject rate (English rejected) and false-accept rate (contamination kept) per mode."""
    texts = [row["text"] for row in rows]
    report = {}
    for mode, judge in judges.items():
        per_kind: dict[str, Counter] = defaultdict(Counter)
        totals: Counter = Counter()
        wrong_examples = []
        for row, verdict in zip(rows, judge.judge(texts), strict=True):
            english = row["label"] == "en"
            wrong = (verdict is not None) == english  # English rejected, or contamination kept
            side = "english" if english else "contaminated"
            totals[side] += 1
            totals[f"{side}_errors"] += wrong
            per_kind[row["kind"]]["n"] += 1
            per_kind[row["kind"]]["errors"] += wrong
            if wrong:
                wrong_examples.append(f"{row['kind']}:{row['text'][:60]!r}:{verdict.check if verdict else 'kept'}")
        log.info("eval mode=%s wrong=%d examples=%s", mode, len(wrong_examples), wrong_examples[:5])
        log.debug("eval mode=%s all_wrong=%s", mode, wrong_examples)
        report[mode] = {
            "n_english": totals["english"],
            "n_contaminated": totals["contaminated"],
            "false_rejects": totals["english_errors"],
            "false_accepts": totals["contaminated_errors"],
            "false_reject_rate": round(totals["english_errors"] / max(totals["english"], 1), 4),
            "false_accept_rate": round(totals["contaminated_errors"] / max(totals["contaminated"], 1), 4),
            "per_kind": {
                kind: {"n": c["n"], "errors": c["errors"], "error_rate": round(c["errors"] / c["n"], 4)}
                for kind, c in sorted(per_kind.items())
            },
        }
    return report


def read_eval(path: Path) -> list[dict]:
    rows = list(read_jsonl(path))
    for n, row in enumerate(rows, start=1):
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("text"), str)
            or row.get("label") not in ("en", "contaminated")
        ):
            raise JsonlError(f"{path}: row {n}: needs text, label en|contaminated and kind")
        row.setdefault("kind", row["label"])
    return rows


def write_rejects(folder: Path, rejected: list[dict]) -> None:
    """One JSONL file per check ("language:German" -> language__German.jsonl), built atomically."""
    by_check: dict[str, list[dict]] = defaultdict(list)
    for record in rejected:
        by_check[record["check"]].append(record)
    with atomic_dir(folder) as tmp:
        for check, records in sorted(by_check.items()):
            write_jsonl(tmp / f"{check.replace(':', '__')}.jsonl", records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--in", dest="inp", type=Path, required=True)
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
        eval_rows = read_eval(args.eval) if args.eval else []
    except (ParamsError, JsonlError, FileNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    if not args.inp.exists():
        log.error("%s: input not found (run the generate stage first)", args.inp)
        return 2
    lines = iter_jsonl_lines(args.inp)
    first = next(lines, None)
    if first is None:
        log.error("%s: input is empty: no records to filter", args.inp)
        return 2
    # Streamed: only the rejects are held in memory, the kept records go straight to disk.
    rejected: list[dict] = []
    progress = tqdm(itertools.chain([first], lines), desc=f"filter ({params.mode})", unit="record", mininterval=5.0)
    kept = write_jsonl(args.out, filter_lines(progress, judges[params.mode], params, rejected))
    write_rejects(args.rejects, rejected)
    by_check = Counter(r["check"] for r in rejected)
    metrics = {
        "mode": params.mode,
        "records_in": kept + len(rejected),
        "records_out": kept,
        "rejected": len(rejected),
        "rejected_by_check": dict(sorted(by_check.items())),
        "rejected_by_field": dict(sorted(Counter(r["field"] or "record" for r in rejected).items())),
        "eval": evaluate(eval_rows, judges) if eval_rows else {},
    }
    write_json(args.metrics, metrics)
    log.info("records_in=%d records_out=%d rejected=%s", metrics["records_in"], kept, dict(by_check))
    for mode, scores in metrics["eval"].items():
        log.info(
            "eval mode=%s false_reject_rate=%.4f false_accept_rate=%.4f",
            mode,
            scores["false_reject_rate"],
            scores["false_accept_rate"],
        )
    if not kept:
        log.error("%s: every record was rejected: see %s", args.inp, args.rejects)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
