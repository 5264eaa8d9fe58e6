"""compare: the key params and metrics of every DVC experiment in one readable table.

`dvc exp show` lists every param and metric (hundreds of columns); this shows what tells
experiments apart: per experiment, the params that differ between the rows shown (plus
`train.variant` and `tokenizer.vocab_size`), the pass rate of each evaluation split next to
its chance baseline, the exam scores, the shipped model's val loss and the positional gap.

    python -m tools.compare                   # workspace, HEAD and HEAD's experiments (make compare)
    python -m tools.compare -A                # experiments of every commit
    python -m tools.compare --param train.lr  # one more param column
    python -m tools.compare --format markdown # a table to paste into an issue
    dvc exp show --json > exps.json && python -m tools.compare --input exps.json

Cells read `pass (chance)`: 0.42 (0.43) is a pass rate of 0.42 where answering at random
scores 0.43. ll = multiple-choice accuracy by option log-likelihood, norm = its
length-normalised form (acc_norm), gen = accuracy of the generated answer; exam* = the
hand-written exam on trained articles, xunseen* = on held-out articles; gap = accuracy with
the correct option first minus second on the contrastive pairs (0 = no positional bias).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from evaluation.key_scores import KEY_SCORES
from experiments.exp_show import Experiment, dig, exp_show_json, markdown_table, parse_exp_show

EVAL = "metrics/eval.json"
TRAIN = "metrics/train.json"
# always shown: what a model is, even when every row shares it
FIXED_PARAMS = ("train.variant", "tokenizer.vocab_size")
# more differing params than this are named under the table instead of becoming columns
MAX_PARAM_COLUMNS = 8


def fmt(value: object) -> str:
    # three decimals: experiments often differ by less than 0.01 (1 question of 150 is 0.007)
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def with_chance(split: str, value_key: str) -> Callable[[Experiment], str]:
    def cell(exp: Experiment) -> str:
        evaluation = exp.metrics.get(EVAL, {})
        value = dig(evaluation, f"splits.{split}.{value_key}")
        chance = dig(evaluation, f"splits.{split}.baselines.chance")
        return fmt(value) if value is None or chance is None else f"{fmt(value)} ({fmt(chance)})"

    return cell


def metric(path: str, dotted: str) -> Callable[[Experiment], str]:
    return lambda exp: fmt(dig(exp.metrics.get(path, {}), dotted))


def score_columns() -> list[tuple[str, Callable[[Experiment], str]]]:
    """evaluation.key_scores' scores, the first score of each split beside its chance."""
    columns, seen = [], set()
    for label, split, key in KEY_SCORES:
        cell = metric(EVAL, f"splits.{split}.{key}") if split in seen else with_chance(split, key)
        columns.append((label, cell))
        seen.add(split)
    return columns


METRIC_COLUMNS: list[tuple[str, Callable[[Experiment], str]]] = [
    *score_columns(),
    ("val loss", metric(EVAL, "val_loss")),
    ("gap", metric(EVAL, "contrastive.generated.gap")),
    ("step", metric(TRAIN, "model_step")),
]


def differing_params(experiments: list[Experiment]) -> list[str]:
    keys = sorted({key for exp in experiments for key in exp.params})
    return [key for key in keys if len({json.dumps(exp.params.get(key), sort_keys=True) for exp in experiments}) > 1]


def param_columns(experiments: list[Experiment], extra: list[str]) -> tuple[list[str], list[str]]:
    """The param columns (fixed, asked for, then differing ones up to the limit) and the
    differing params left out for want of room."""
    wanted = list(dict.fromkeys([*FIXED_PARAMS, *extra]))
    differing = [key for key in differing_params(experiments) if key not in wanted]
    room = max(0, MAX_PARAM_COLUMNS - len(wanted))
    return wanted + differing[:room], differing[room:]


def param_cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def table(
    experiments: list[Experiment], extra_params: list[str] | None = None
) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, rows of cells and the differing params left out, for any rendering."""
    params, left_out = param_columns(experiments, extra_params or [])
    header = ["experiment", *params, *(name for name, _ in METRIC_COLUMNS)]
    rows = []
    for exp in experiments:
        name = exp.name if exp.parent is None else f"  {exp.name}"  # experiments under their baseline
        if exp.state:
            name += f" ({exp.state})"
        rows.append(
            [name, *(param_cell(exp.params.get(k)) for k in params), *(cell(exp) for _, cell in METRIC_COLUMNS)]
        )
    return header, rows, left_out


def render_text(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--input", type=Path, help="read this saved `dvc exp show --json` output instead of running dvc"
    )
    parser.add_argument("-A", "--all-commits", action="store_true", help="experiments of every commit, not just HEAD")
    parser.add_argument("--param", action="append", default=[], help="a dotted params.yaml key to show (repeatable)")
    parser.add_argument("--format", choices=("text", "markdown"), default="text")
    parser.add_argument("--repo", type=Path, default=Path("."), help="the DVC repository (default: here)")
    args = parser.parse_args(argv)
    try:
        raw = (
            json.loads(args.input.read_text(encoding="utf-8"))
            if args.input
            else exp_show_json(args.all_commits, args.repo)
        )
        experiments = parse_exp_show(raw)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return 2
    if not experiments:
        print("compare: no experiments to show", file=sys.stderr)
        return 1
    header, rows, left_out = table(experiments, args.param)
    print(markdown_table(header, rows) if args.format == "markdown" else render_text(header, rows))
    if left_out:
        print(f"\nalso differ (add with --param): {', '.join(left_out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
