"""The small ablation table: four questions of the seed project, each answered by CPU miniatures
of data/recipes.yaml run one after another as DVC experiments, then read back from
`dvc exp show` (experiments/ablation_table.py renders them).

Every row is a recipe's `mini` overrides plus one budget, the same on every row
(`train.epochs`), so each row is a few CPU minutes and all rows train on their records for the
same number of epochs. The baseline row is the `tiny` recipe (params.yaml as shipped, which is
also the two-phase weight decay schedule): it runs once and every question reads it.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass

from experiments.exp_show import Experiment, dig, flatten
from experiments.recipes import Registry, apply_overrides, resolve, set_arguments

BASELINE = "tiny"
SCALE = "mini"
PREFIX = "abl-"  # experiment name = PREFIX + recipe
DEFAULT_EPOCHS = 3.0  # the shipped default is 10: about 210 packed steps instead of 700
EVAL, TRAIN, PACK = "metrics/eval.json", "metrics/train.json", "metrics/pack.json"

Reader = Callable[[Experiment], object]


def at(path: str, dotted: str) -> Reader:
    return lambda exp: dig(exp.metrics.get(path, {}), dotted)


def share(path: str, part: str, whole: str) -> Reader:
    def read(exp: Experiment) -> float | None:
        top, bottom = at(path, part)(exp), at(path, whole)(exp)
        return round(top / bottom, 6) if isinstance(top, int | float) and bottom else None

    return read


def constant(value: float) -> Reader:
    return lambda exp: value


def split_baseline(split: str, name: str) -> Reader:
    """A trivial answer's pass rate with the number of items it applies to: `0.435 (n=46)`."""

    def read(exp: Experiment) -> str | None:
        rate = at(EVAL, f"splits.{split}.baselines.{name}.pass_rate")(exp)
        n = at(EVAL, f"splits.{split}.baselines.{name}.n")(exp)
        return None if rate is None else f"{rate:.3f} (n={n})"

    return read


@dataclass(frozen=True)
class Metric:
    label: str
    read: Reader  # the value of one experiment
    digits: int = 3
    # trivial-row label -> its value for this metric, read from the baseline experiment
    trivial: tuple[tuple[str, Reader], ...] = ()


CHANCE = "chance (uniform guess on the choice items)"
FIRST = "always the first option"
TRUE = "always 'True'"
CAP = "never stops (the answer cap)"


RECALL = Metric(
    "recall",
    at(EVAL, "splits.recall.pass_rate"),
    trivial=(
        (CHANCE, at(EVAL, "splits.recall.baselines.chance")),
        (FIRST, split_baseline("recall", "first_option")),
        (TRUE, split_baseline("recall", "always_true")),
    ),
)


EXAM_LL = Metric(
    "exam ll",
    at(EVAL, "splits.exam.ll_acc"),
    trivial=((CHANCE, at(EVAL, "splits.exam.baselines.chance")), (FIRST, split_baseline("exam", "first_option"))),
)


def contrastive(side: str) -> tuple[Metric, Metric]:
    """Accuracy and positional gap of the contrastive pairs, by generated answer or by option
    log-likelihood. Two options: chance is 0.5; always the first option has a gap of 1."""
    acc = Metric(
        f"{side} acc",
        at(EVAL, f"contrastive.{side}.acc"),
        trivial=(
            (CHANCE, constant(0.5)),
            (FIRST, share(EVAL, f"contrastive.{side}.first_total", f"contrastive.{side}.n")),
        ),
    )
    gap = Metric(
        f"{side} gap", at(EVAL, f"contrastive.{side}.gap"), trivial=((CHANCE, constant(0.0)), (FIRST, constant(1.0)))
    )
    return acc, gap


@dataclass(frozen=True)
class Question:
    key: str
    title: str
    rows: tuple[tuple[str, str], ...]  # (row label, recipe); the first is the baseline
    metrics: tuple[Metric, ...]
    reads: str  # how to read the table


QUESTIONS: tuple[Question, ...] = (
    Question(
        "jeopardy",
        "QA only vs QA + Q-PT: is the QA-only model a 'Jeopardy bot'?",
        (("QA + contrastive + Q-PT (shipped)", BASELINE), ("QA only", "jeopardy-bot")),
        (
            Metric(
                "open answer tokens",
                at(EVAL, "historian.mean_answer_tokens"),
                digits=1,
                trivial=((CAP, lambda exp: exp.params.get("evaluate.open_max_new_tokens")),),
            ),
            Metric("open stopped", at(EVAL, "historian.stopped_share"), trivial=((CAP, constant(0.0)),)),
            Metric("open grounded", at(EVAL, "historian.grounded_share")),
            RECALL,
        ),
        "The open prompts are the historian check (evaluate.open_prompts): mean answer length in tokens, the "
        "share of answers that end with <|im_end|> before the cap, and the share of their sentences grounded in "
        "the prompt's article. A 'Jeopardy bot' answers factoid questions (recall) but on open prompts gives a "
        "fragment or runs to the cap. The QA-only row also drops the contrastive records, and trains on fewer "
        "records (so fewer tokens) per epoch.",
    ),
    Question(
        "swap",
        "Contrast swap on vs off: the positional-bias gap at the measured contrastive accuracy",
        (("swap on: every pair also mirrored (shipped)", BASELINE), ("swap off: as generated", "contrastive-no-swap")),
        (
            *contrastive("generated"),
            *contrastive("ll"),
            Metric("correct first", share(EVAL, "contrastive.generated.first_total", "contrastive.generated.n")),
        ),
        "gap = accuracy with the correct option first minus with it second, on the recall split's two-option "
        "contrastive questions (0: no positional bias); read it beside the accuracy, a gap at chance accuracy "
        "says little. `generated` grades the generated answer, `ll` picks the option of higher log-likelihood. "
        "`correct first` is the share of those questions whose correct option comes first: the offline rules "
        "generator already asks its options in both orders (0.48 without mirrors, data/recipes.yaml), so "
        "offline the swap-off row should show little bias; an LLM generator that lists the correct option "
        "first is where the mirrors matter.",
    ),
    Question(
        "isolation",
        "Record isolation on vs off (bleed-over) vs one record per padded context: recall at equal training tokens",
        (
            ("packed, records isolated (shipped)", BASELINE),
            ("packed, bleed-over (isolation off)", "bleed-over"),
            ("padded: one record per context", "padded"),
        ),
        (RECALL, EXAM_LL, Metric("useful token share", at(PACK, "train.useful_token_share"))),
        "All three rows train on the same records for the same epochs, so on the same tokens. Bleed-over lets "
        "attention and positions run across the records of a packed context (validation keeps isolation); padded "
        "gives every record a context of its own, so the same tokens take several times the steps (steps "
        "column) and most of each context is padding (useful token share, metrics/pack.json).",
    ),
    Question(
        "wd",
        "Two-phase vs constant weight decay",
        (
            ("two-phase: 0.1, then 0.05 after train.wd_switch_epochs=2 (shipped)", BASELINE),
            ("constant 0.1", "constant-wd"),
        ),
        (RECALL, EXAM_LL),
        "The two-phase row is the baseline (`tiny` is the shipped schedule; the `two-phase-wd` recipe gives the "
        "same params). Under the epoch budget the late, lighter phase is the epochs after the second.",
    ),
)


def recipes_in_order(questions: tuple[Question, ...] | None = None) -> list[str]:
    """Every recipe of the table once, the baseline first."""
    rows = (recipe for q in (QUESTIONS if questions is None else questions) for _, recipe in q.rows)
    return list(dict.fromkeys([BASELINE, *rows]))


@dataclass(frozen=True)
class Run:
    recipe: str
    name: str  # the DVC experiment
    overrides: dict  # the recipe's mini overrides plus the budget, checked
    params: dict[str, object]  # params.yaml as the row runs it, flattened like `dvc exp show`'s
    seed: int | None = None  # train.seed of this run when the table runs each row over several seeds


def budget(epochs: float, seed: int | None = None) -> dict[str, float | int]:
    return {"train.epochs": float(epochs), **({} if seed is None else {"train.seed": seed})}


def experiment_name(recipe: str, seed: int | None) -> str:
    return PREFIX + recipe + ("" if seed is None else f"-s{seed}")


def plan(registry: Registry, params: dict, epochs: float = DEFAULT_EPOCHS, seeds: list[int] | None = None) -> list[Run]:
    """One Run per recipe of the table, or one per recipe and train seed when `seeds` is given (a
    single run moves ~0.1 on the exam with the seed alone, so a difference needs several);
    every run's overrides are checked before any runs."""
    if seeds is not None and (not seeds or len(set(seeds)) != len(seeds)):
        raise ValueError(f"--seeds needs distinct train seeds, got {seeds}")
    runs = []
    for recipe in recipes_in_order():
        for seed in seeds or [None]:
            overrides = resolve(registry, recipe, SCALE, params, budget(epochs, seed))
            applied = apply_overrides(params, overrides, recipe)
            runs.append(Run(recipe, experiment_name(recipe, seed), overrides, flatten(applied), seed))
    return runs


def find(experiments: list[Experiment], name: str) -> Experiment | None:
    """The first experiment of that name (`dvc exp show` lists HEAD's first)."""
    return next((exp for exp in experiments if exp.parent is not None and exp.name == name), None)


def same_params(exp: Experiment, run: Run) -> bool:
    return exp.params == run.params


# What `run` does with a row: its reason is printed when it does not run.
SKIP, RUN, REPLACE, FORCE, BUSY = "skip", "run", "replace", "force", "busy"


def decide(run: Run, found: Experiment | None, force: bool) -> tuple[str, str]:
    """(action, why). An experiment of the same name and params counts as done; one of the same
    name and other params (another budget, an edited recipe) is removed and run again."""
    if found is not None and found.state in ("queued", "running"):
        return BUSY, f"{run.name} is {found.state} already (`dvc queue status`); not started again"
    if force:
        return FORCE, "--force: every stage rerun, any experiment of that name overwritten"
    if found is None or found.state == "failed":
        return RUN, "not run yet" if found is None else "failed before"
    if same_params(found, run):
        return SKIP, f"{run.name} already ran with these params (--force reruns it)"
    return REPLACE, f"{run.name} ran with other params: removed and run again"


def commands(run: Run, action: str) -> list[list[str]]:
    """The dvc commands of one row (none when it is skipped)."""
    if action in (SKIP, BUSY):
        return []
    command = ["dvc", "exp", "run", "--temp", "-n", run.name, *(["-f"] if action == FORCE else [])]
    for pair in set_arguments(run.overrides):
        command += ["-S", pair]
    return [["dvc", "exp", "remove", run.name], command] if action == REPLACE else [command]


@dataclass(frozen=True)
class Outcome:
    recipe: str
    action: str
    returncode: int = 0
    seconds: float | None = None  # wall time of this row's dvc commands


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def run_rows(
    runs: list[Run],
    experiments: list[Experiment],
    execute: Callable[[list[str]], int],
    echo: Callable[[str], None],
    force: bool = False,
    dry_run: bool = False,
) -> list[Outcome]:
    """Each row's commands one after another (the rows share the machine's cores); a failed
    row is reported and the next one still runs. `dry_run` prints the commands only."""
    outcomes = []
    for number, run in enumerate(runs, 1):
        row = f"row {number}/{len(runs)} {run.recipe}" + ("" if run.seed is None else f" seed {run.seed}")
        action, why = decide(run, find(experiments, run.name), force)
        todo = commands(run, action)
        if dry_run:
            echo(f"# {row}: {why}")
            for command in todo:
                echo(shlex.join(command))
            outcomes.append(Outcome(run.recipe, action))
            continue
        if not todo:
            echo(f"{row}: skipped, {why}")
            outcomes.append(Outcome(run.recipe, action))
            continue
        echo(f"{row}: {why}: {shlex.join(todo[-1])}")
        started, returncode = time.monotonic(), 0
        for command in todo:
            returncode = execute(command)
            if returncode:
                break
        seconds = time.monotonic() - started
        echo(f"{row}: {'FAILED (exit ' + str(returncode) + ')' if returncode else 'done'} in {minutes(seconds)}")
        outcomes.append(Outcome(run.recipe, action, returncode, seconds))
    return outcomes
