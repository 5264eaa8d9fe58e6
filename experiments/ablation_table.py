"""The ablation table in Markdown: one table per question of experiments/ablation.py, read from
the experiments `dvc exp show` lists.

A table's first row is the baseline (`tiny`); a variant's cell is its value and, in
parentheses, its difference from the baseline's. Under them, the chance and trivial baselines
of the metrics that have them (from the baseline experiment's metrics/eval.json). A row whose
experiment is missing, failed or ran with other params than the current budget says so, and a
value it has not got is "—".
"""

from __future__ import annotations

import statistics

from experiments.ablation import BASELINE, QUESTIONS, TRAIN, Metric, Outcome, Question, Run, find, minutes, same_params
from experiments.exp_show import Experiment, dig, markdown_table

MISSING = "—"


def number(value: object, digits: int = 3) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return str(value) if isinstance(value, int) else f"{value:.{digits}f}"


def numbers(metric: Metric, exps: list[Experiment]) -> list[float]:
    values = (metric.read(exp) for exp in exps)
    return [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]


def cell(metric: Metric, exps: list[Experiment], baseline: list[Experiment] | None) -> str:
    """The row's value (the mean over its seeds, ± their standard deviation when several) and its
    difference from the baseline row's mean. A non-numeric value is shown as it is."""
    values = numbers(metric, exps)
    if not values:
        return number(metric.read(exps[0]) if exps else None, metric.digits)
    mean = statistics.fmean(values)
    text = number(mean if len(values) > 1 else values[0], metric.digits)
    if len(values) > 1:
        text += f" ±{statistics.stdev(values):.{metric.digits}f}"  # the sample standard deviation
    base = numbers(metric, baseline) if baseline else []
    if base:
        text += f" ({mean - statistics.fmean(base):+.{metric.digits}f})"
    return text


def status(exp: Experiment | None, run: Run) -> str:
    """'' for an experiment of the current plan that finished, else why its numbers are missing or other."""
    if exp is None:
        return "not run"
    if exp.state:
        return exp.state
    return "" if same_params(exp, run) else "other params"


def row_status(statuses: list[str]) -> str:
    """One run: its status. Several seeds: '' when all finished, else how many did and why not."""
    if len(statuses) == 1 or not any(statuses):
        return statuses[0]
    done = sum(1 for why in statuses if why in ("", "other params"))
    reasons = ", ".join(dict.fromkeys(why for why in statuses if why))
    return f"{done}/{len(statuses)} seeds; {reasons}"


def experiment_names(runs: list[Run]) -> str:
    """`abl-tiny` for one run; `abl-tiny-s1945/7/2` for one run per seed."""
    if len(runs) == 1:
        return runs[0].name
    return f"{runs[0].name}/" + "/".join(str(run.seed) for run in runs[1:])


def train_columns(exps: list[Experiment], seconds: float | None) -> list[str]:
    """Optimizer steps of the run (metrics/train.json; the first seed's, the others train as
    many) and the wall time `run` measured for the whole row, every seed (timings stay out of
    the tracked metrics, so a table read later has none)."""
    train = exps[0].metrics.get(TRAIN, {}) if exps else {}
    return [number(dig(train, "total_steps")), minutes(seconds) if seconds else MISSING]


def finished(experiments: list[Experiment], runs: list[Run]) -> list[Experiment]:
    """The experiments of these runs that have numbers to show (another budget is shown, marked)."""
    found = ((find(experiments, run.name), run) for run in runs)
    return [exp for exp, run in found if status(exp, run) in ("", "other params")]


def question_table(
    question: Question, experiments: list[Experiment], runs: dict[str, list[Run]], seconds: dict[str, float]
) -> str:
    header = ["row", "experiment", "steps", "time", *(m.label for m in question.metrics)]
    baseline = finished(experiments, runs[question.rows[0][1]])  # a failed or queued run has no numbers
    rows = []
    for label, recipe in question.rows:
        recipe_runs = runs[recipe]
        why = row_status([status(find(experiments, run.name), run) for run in recipe_runs])
        shown = finished(experiments, recipe_runs)
        rows.append(
            [
                f"{label} [{why}]" if why else label,
                experiment_names(recipe_runs),
                *train_columns(shown, seconds.get(recipe)),
                *(cell(m, shown, None if recipe == question.rows[0][1] else baseline) for m in question.metrics),
            ]
        )
    trivial_labels = list(dict.fromkeys(label for m in question.metrics for label, _ in m.trivial))
    for label in trivial_labels:
        values = []
        for metric in question.metrics:
            read = dict(metric.trivial).get(label)
            values.append("" if read is None else number(read(baseline[0]) if baseline else None, metric.digits))
        rows.append([f"*{label}*", "", "", "", *values])
    return markdown_table(header, rows)


def total_steps(experiments: list[Experiment], runs: list[Run] | None) -> object:
    exps = finished(experiments, runs or [])
    return dig(exps[0].metrics.get(TRAIN, {}), "total_steps") if exps else None


def padded_steps_ratio(experiments: list[Experiment], runs: dict[str, list[Run]]) -> float | None:
    """Steps of the padded row over the baseline's: what equal tokens cost without packing."""
    padded, packed = (total_steps(experiments, runs.get(r)) for r in ("padded", BASELINE))
    return padded / packed if isinstance(padded, int) and isinstance(packed, int) and packed else None


def render(
    runs: list[Run],
    experiments: list[Experiment],
    epochs: float,
    outcomes: list[Outcome] | None = None,
    questions: tuple[Question, ...] | None = None,
) -> str:
    """The whole table: a note on how the rows were made, then each question's table."""
    by_recipe: dict[str, list[Run]] = {}
    for run in runs:
        by_recipe.setdefault(run.recipe, []).append(run)
    seconds: dict[str, float] = {}
    for o in outcomes or []:
        if o.seconds is not None and not o.returncode:
            seconds[o.recipe] = seconds.get(o.recipe, 0.0) + o.seconds
    seeds = [run.seed for run in by_recipe.get(BASELINE, []) if run.seed is not None]
    ratio = padded_steps_ratio(experiments, by_recipe)
    parts = [
        "Every row is a recipe of data/recipes.yaml at the `mini` scale (params.yaml plus the recipe's "
        f"overrides) with the ablation budget `train.epochs={epochs:g}` on top, the same on every row (the shipped "
        "default is 10), run as `dvc exp run --temp -n abl-<recipe>`. Equal epochs are equal training tokens "
        "wherever the recipe keeps the records; padded contexts hold one record each, so the same tokens take "
        f"more optimizer steps{f' ({ratio:.1f}x here)' if ratio else ''}. `steps` is the run's optimizer steps "
        "(metrics/train.json), `time` the wall time of its `dvc exp run` (every stage the recipe changes, "
        "training and evaluation). A variant's cell is its value and (its difference from the baseline row). "
        "Italic rows are baselines from the baseline row's metrics/eval.json: chance is a uniform guess over "
        "the options of the choice items; a trivial answer (always the first option, always 'True') is graded "
        "by the same judge on the items it applies to (n)."
        + (
            f" Every row ran once per train seed ({', '.join(map(str, seeds))}; `-S train.seed=<seed>`, named "
            "`abl-<recipe>-s<seed>`): a cell is the mean over the seeds that finished ± their standard deviation, "
            "and its difference is from the baseline row's mean."
            if seeds
            else ""
        )
    ]
    for question in QUESTIONS if questions is None else questions:
        parts += [f"### {question.title}", question_table(question, experiments, by_recipe, seconds), question.reads]
    return "\n\n".join(parts) + "\n"
