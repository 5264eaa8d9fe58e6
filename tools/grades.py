"""grades: draw a seeded sample of synthetic records for grading by hand, and score the grades.

A person reads each sampled record next to its window and sets four booleans: `natural` (a
natural question that stands alone), `answerable` (the window answers it), `correct` (the
answer is correct and complete) and `true` (the record teaches nothing false), plus a note.
`score` recomputes the pass shares from that file, so a reported figure can be checked.

python -m tools.grades sample --records data/filtered.jsonl --qpt data/qpt.jsonl \\
    --windows data/windows.jsonl --out data/grades/sample.jsonl      # 100 rules + 30 Q-PT records
python -m tools.grades score data/grades/sample.jsonl                # shares per kind and criterion
python -m tools.grades score data/grades/sample.jsonl --min-pass 0.9 # exit 1 below 90% passing all four
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from common.files import write_jsonl

CRITERIA = ("natural", "answerable", "correct", "true")


class GradesError(ValueError):
    """A grades file or its inputs are unusable; the message names the file and line."""


def read_jsonl(path: Path) -> list[dict]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise GradesError(f"{path}: cannot read: {exc}") from exc
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise GradesError(f"{path}:{number}: not JSON: {exc}") from exc
    return records


def sample_rows(records: list[dict], qpt: list[dict], windows: dict[str, dict], n_rules: int, n_qpt: int, seed: int):
    """`n_rules` rules records and `n_qpt` Q-PT records drawn with random.Random(seed), each
    with its window's text and the grades left unset (None) for the grader."""
    rules = [r for r in records if r.get("meta", {}).get("generator") == "rules"]
    rng = random.Random(seed)
    if len(rules) < n_rules or len(qpt) < n_qpt:
        raise GradesError(f"asked for {n_rules} rules and {n_qpt} Q-PT records, have {len(rules)} and {len(qpt)}")
    rows = []
    for kind, picked in (("rules", rng.sample(rules, n_rules)), ("qpt", rng.sample(qpt, n_qpt))):
        for record in picked:
            if record["window"] not in windows:
                raise GradesError(f"record {record['id']}: window {record['window']} is not in the windows file")
            user, assistant = record["messages"][0]["content"], record["messages"][-1]["content"]
            rows.append(
                {
                    "id": record["id"],
                    "kind": kind,
                    "type": record["type"],
                    "window": record["window"],
                    "question": user,
                    "answer": assistant,
                    "window_text": windows[record["window"]]["text"],
                    **dict.fromkeys(CRITERIA),
                    "note": "",
                }
            )
    return rows


def score(rows: list[dict], source: str) -> dict:
    """Pass shares per kind (and "all"): each criterion and all four together."""
    for number, row in enumerate(rows, start=1):
        missing = [c for c in CRITERIA if not isinstance(row.get(c), bool)]
        if missing:
            raise GradesError(
                f"{source}:{number} ({row.get('id')}): not graded: {', '.join(missing)} must be true/false"
            )
    result = {}
    for kind in sorted({r["kind"] for r in rows}) + ["all"]:
        group = [r for r in rows if kind in ("all", r["kind"])]
        shares = {c: sum(r[c] for r in group) / len(group) for c in CRITERIA}
        result[kind] = {
            "n": len(group),
            **shares,
            "all_four": sum(all(r[c] for c in CRITERIA) for r in group) / len(group),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)
    draw = verbs.add_parser("sample", help="draw the records to grade (grades left unset)")
    draw.add_argument("--records", type=Path, required=True, help="filtered records (rules ones are sampled)")
    draw.add_argument("--qpt", type=Path, required=True, help="Q-PT records")
    draw.add_argument("--windows", type=Path, required=True, help="the windows the records cite")
    draw.add_argument("--out", type=Path, required=True, help="grades file to write; never overwritten")
    draw.add_argument("--rules", type=int, default=100, help="rules records to draw (default 100)")
    draw.add_argument("--qpt-count", type=int, default=30, help="Q-PT records to draw (default 30)")
    draw.add_argument("--seed", type=int, default=13, help="seed of the draw (default 13)")
    check = verbs.add_parser("score", help="pass shares of a graded file")
    check.add_argument("grades", type=Path)
    check.add_argument("--min-pass", type=float, help="exit 1 when the share passing all four is below this")
    args = parser.parse_args(argv)
    try:
        if args.verb == "sample":
            if args.out.exists():
                raise GradesError(f"{args.out} exists: it may hold grades; remove it first to draw again")
            windows = {w["id"]: w for w in read_jsonl(args.windows)}
            rows = sample_rows(
                read_jsonl(args.records), read_jsonl(args.qpt), windows, args.rules, args.qpt_count, args.seed
            )
            args.out.parent.mkdir(parents=True, exist_ok=True)
            write_jsonl(args.out, rows)
            print(f"{len(rows)} records to grade in {args.out}")
            return 0
        result = score(read_jsonl(args.grades), str(args.grades))
    except GradesError as exc:
        print(f"grades: {exc}", file=sys.stderr)
        return 2
    for kind, shares in result.items():
        figures = " ".join(f"{c}={shares[c]:.1%}" for c in (*CRITERIA, "all_four"))
        print(f"{kind}: n={shares['n']} {figures}")
    if args.min_pass is not None and result["all"]["all_four"] < args.min_pass:
        print(f"grades: {result['all']['all_four']:.1%} pass all four, below {args.min_pass:.0%}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
