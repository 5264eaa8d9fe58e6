"""ablation: run the small ablation table of the recipes and print it in Markdown (make ablation).

Four questions, each answered by CPU miniatures of data/recipes.yaml against one shared
baseline, the `tiny` recipe (params.yaml as shipped, also the two-phase weight decay):

  QA only vs QA + Q-PT         jeopardy-bot          open-prompt answers (historian: length,
                                                     stop share, groundedness) and recall
  contrast swap on vs off      contrastive-no-swap   contrastive accuracy and positional gap,
                                                     generated and by log-likelihood
  record isolation             bleed-over, padded    recall pass rate and exam ll accuracy
  weight decay schedule        constant-wd           recall pass rate and exam ll accuracy

`run` runs the 6 rows one after another (not in parallel: they share the cores), each as
`dvc exp run --temp -n abl-<recipe> -S <recipe's overrides> -S train.epochs=3`. The budget
(--epochs) is the same on every row, so every row trains on its records for the same epochs:
about 210 steps for a packed row and several times that for `padded` (one record per context).
A row whose experiment of HEAD already ran with the same params is skipped (--force reruns it);
one of the same name and other params (another --epochs) is removed and run again. A failed
row is reported and the others still run; the exit code is 1 if any failed. Then the table.
Each row is a few CPU minutes on 2 cores (a packed row about 4, padded 12-15: estimated), the
whole table some 35 minutes.

With --seeds every row runs once per train seed (`-S train.seed=<seed>`, experiments named
abl-<recipe>-s<seed>) and each cell is the mean over the seeds ± their standard deviation. The
default's exam log-likelihood accuracy moves ~0.1 between seeds (README), so a single-run
difference smaller than that says nothing; three seeds triple the time.

`table` prints the table from the experiments `dvc exp show` lists, without running anything: a
Markdown table per question with the baseline row first, each variant's difference from it,
the chance and trivial baselines (from the baseline's metrics/eval.json) and "—" / "not run"
for a row with no numbers.

Examples:
  python -m tools.ablation run --dry-run           # the dvc commands, nothing run
  python -m tools.ablation run                     # all rows, then the table (make ablation)
  python -m tools.ablation run --epochs 2 --write ablation.md
  python -m tools.ablation run --force             # rerun every row, even those done
  python -m tools.ablation run --seeds 1945,7,2    # every row over three train seeds: mean ± SD
  python -m tools.ablation table                   # the table of the experiments done so far
  python -m tools.ablation table -A --write ablation.md   # also experiments of older commits
  dvc exp show --json > exps.json && python -m tools.ablation table --input exps.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from common.files import atomic_write
from common.params import ParamsError, read_params
from experiments.ablation import DEFAULT_EPOCHS, plan, run_rows
from experiments.ablation_table import render
from experiments.exp_show import exp_show_json, parse_exp_show
from experiments.recipes import RecipeError, load_registry
from tools.recipes import params_modified


def seed_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integer seeds such as 1945,7,2, got {text!r}"
        ) from None


def read_experiments(args) -> list:
    raw = (
        json.loads(args.input.read_text(encoding="utf-8")) if args.input else exp_show_json(args.all_commits, Path("."))
    )
    return parse_exp_show(raw)


def execute(command: list[str]) -> int:
    # this interpreter's (pinned) dvc, its output straight to the terminal; nothing phones home
    env = {**os.environ, "DVC_NO_ANALYTICS": os.environ.get("DVC_NO_ANALYTICS", "1")}
    return subprocess.run([sys.executable, "-m", *command], env=env).returncode


def say(line: str) -> None:
    print(line, flush=True)  # before the dvc output that follows it, also into a log file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.ablation", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", default="params.yaml")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run every row as a DVC experiment, then print the table")
    run.add_argument("--force", action="store_true", help="rerun rows whose experiment already ran (dvc exp run -f)")
    run.add_argument("--dry-run", action="store_true", help="print the dvc commands, run nothing")
    run.add_argument("--allow-modified-params", action="store_true", help="run although params.yaml is not HEAD's")
    table = sub.add_parser("table", help="print the table of the experiments done so far")
    table.add_argument("-A", "--all-commits", action="store_true", help="also experiments of older commits")
    for one in (run, table):
        one.add_argument("--epochs", type=float, default=DEFAULT_EPOCHS, help="train.epochs of every row (%(default)s)")
        one.add_argument("--write", type=Path, metavar="FILE", help="also write the Markdown table to FILE")
        one.add_argument("--input", type=Path, help="a saved `dvc exp show --json` instead of running dvc")
        one.add_argument(
            "--seeds",
            type=seed_list,
            metavar="S1,S2,...",
            help="run every row once per train.seed (experiments abl-<recipe>-s<seed>); the table shows the mean "
            "± standard deviation. Default: one run per row at params.yaml's train.seed",
        )
    args = parser.parse_args(argv)
    args.all_commits = getattr(args, "all_commits", False)
    try:
        runs = plan(load_registry(), read_params(args.params), args.epochs, args.seeds)
        if args.command == "run" and not args.dry_run:
            if args.input:
                raise RecipeError("--input is for `table` and `run --dry-run`: a real run reads the experiments itself")
            if params_modified(args.params) and not args.allow_modified_params:
                raise RecipeError(
                    f"{args.params} differs from the last commit; its values would be in every row: "
                    f"`git checkout {args.params}` first, or pass --allow-modified-params"
                )
        outcomes = None
        if args.command == "run":
            outcomes = run_rows(runs, read_experiments(args), execute, say, args.force, args.dry_run)
            if args.dry_run:
                return 0
        text = render(runs, read_experiments(args), args.epochs, outcomes)
    except (RecipeError, ParamsError, OSError, ValueError, RuntimeError) as exc:
        print(f"ablation: {exc}", file=sys.stderr)
        return 2
    print(text, end="")
    if args.write:
        with atomic_write(args.write) as out:
            out.write(text)
    failed = [o.recipe for o in outcomes or [] if o.returncode]
    if failed:
        print(f"ablation: {len(failed)} row(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
