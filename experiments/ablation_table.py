"""The ablation table in Markdown: one table per question of experiments/ablation.py, read from
the experiments `dvc exp show` lists.

A table's first row is the baseline (`tiny`); a variant's cell is its value and, in
parentheses, its difference from the baseline's. Under them, the chance and trivial baselines
of the metrics that have them (from the baseline experiment's metrics/eval.json). A row whose
experiment is missing, failed or ran with other params than the current budget says so, and a
value it has not got is "—".
"""

from __future__ import annotations

from experiments.ablation import BASELINE, QUESTIONS, TRAIN, Metric, Outcome, Question, Run, find, minutes, same_params
from experiments.exp_show import Experiment, dig, markdown_table

MISSING = "—"


def number(value: object, digits: int = 3) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return str(value) if isinstance(value, int) else f"{value:.{digits}f}"


def cell(metric: Metric, exp: Experiment | None, baseline: Experiment | None) -> str:
    value = metric.read(exp) if exp is not None else None
    text = number(value, metric.digits)
    base = metric.read(baseline) if baseline is not None and baseline is not exp else None
    if isinstance(value, int | float) and isinstance(base, int | float):
        text += f" ({value - base:+.{metric.digits}f})"
    return text


def status(exp: Experiment | None, run: Run) -> str:
    """'' for an experiment of the current plan that finished, else why its numbers are missing or other."""
    if exp is None:
        return "not run"
    if exp.state:
        return exp.state
    return "" if same_params(exp, run) else "other params"


def train_columns(exp: Experiment | None, seconds: float | None) -> list[str]:
    """Optimizer steps of the run (metrics/train.json) and the wall time `run` measured for the
    whole row (timings stay out of the tracked metrics, so a table read later has none)."""
    train = exp.metrics.get(TRAIN, {}) if exp is not None else {}
    return [number(dig(train, "total_steps")), minutes(seconds) if seconds else MISSING]


def question_table(
    question: Question, experiments: list[Experiment], runs: dict[str, Run], seconds: dict[str, float]
) -> str:
    header = ["row", "experiment", "steps", "time", *(m.label for m in question.metrics)]
    baseline = find(experiments, runs[question.rows[0][1]].name)
    if baseline is not None and baseline.state:
        baseline = None  # a failed or queued baseline has no numbers to compare with
    rows = []
    for label, recipe in question.rows:
        run = runs[recipe]
        exp = find(experiments, run.name)
        why = status(exp, run)
        shown = exp if why in ("", "other params") else None
        rows.append(
            [
                f"{label} [{why}]" if why else label,
                run.name,
                *train_columns(shown, seconds.get(recipe)),
                *(cell(m, shown, baseline) for m in question.metrics),
            ]
        )
    trivial_labels = list(dict.fromkeys(label for m in question.metrics for label, _ in m.trivial))
    for label in trivial_labels:
        values = []
        for metric in question.metrics:
            read = dict(metric.trivial).get(label)
            values.append("" if read is None else number(read(baseline) if baseline else None, metric.digits))
        rows.append([f"*{label}*", "", "", "", *values])
    return markdown_table(header, rows)


def total_steps(experiments: list[Experiment], run: Run | None) -> object:
    exp = find(experiments, run.name) if run is not None else None
    return dig(exp.metrics.get(TRAIN, {}), "total_steps") if exp is not None else None


def padded_steps_ratio(experiments: list[Experiment], runs: dict[str, Run]) -> float | None:
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
    by_recipe = {run.recipe: run for run in runs}
    seconds = {o.recipe: o.seconds for o in outcomes or [] if o.seconds is not None and not o.returncode}
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
    ]
    for question in QUESTIONS if questions is None else questions:
        parts += [f"### {question.title}", question_table(question, experiments, by_recipe, seconds), question.reads]
    return "\n\n".join(parts) + "\n"
