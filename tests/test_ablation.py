"""The ablation table: its rows resolve through the recipes, the dvc commands `run` would give,
which rows it skips, and the Markdown it renders from `dvc exp show` output. Nothing trains."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys

import pytest
import yaml
from dvc.utils.hydra import apply_overrides as dvc_apply_overrides

from common.params import read_params
from experiments import ablation, ablation_table
from experiments.ablation import BASELINE, QUESTIONS, decide, plan, run_rows
from experiments.ablation_table import render
from experiments.exp_show import Experiment, flatten, parse_exp_show
from experiments.recipes import apply_overrides, load_registry, set_arguments
from tests.conftest import ROOT
from tests.dvc_helpers import committed_dvc_repo
from tools import ablation as cli

PARAMS = ROOT / "params.yaml"
RECIPES = ["tiny", "jeopardy-bot", "contrastive-no-swap", "bleed-over", "padded", "constant-wd"]


@pytest.fixture(scope="module")
def params():
    return read_params(PARAMS)


@pytest.fixture(scope="module")
def runs(params):
    return plan(load_registry(), params)


def test_every_row_resolves_to_checked_overrides_with_the_budget(runs, params, tmp_path):
    assert [run.recipe for run in runs] == RECIPES  # the baseline once, first
    assert [run.name for run in runs] == [f"abl-{r}" for r in RECIPES]
    for question in QUESTIONS:
        assert question.rows[0][1] == BASELINE, question.key
    for run in runs:
        assert run.overrides["train.epochs"] == 3.0, run.recipe
        # the -S arguments, through DVC's own parser, give the params the skip logic expects
        copy = tmp_path / f"{run.recipe}.yaml"
        shutil.copy(PARAMS, copy)
        dvc_apply_overrides(copy, set_arguments(run.overrides))
        assert flatten(yaml.safe_load(copy.read_text())) == run.params, run.recipe
    by_recipe = {run.recipe: run.params for run in runs}
    assert by_recipe["padded"]["pack.mode"] == "padded" and by_recipe["bleed-over"]["train.isolation"] is False
    assert by_recipe["constant-wd"]["train.weight_decay_late"] == 0.1
    assert plan(load_registry(), params, epochs=2)[0].overrides == {"train.epochs": 2.0}


def test_every_metric_reads_the_shipped_metrics_files():
    """The dotted keys exist in the metrics the pipeline writes (metrics/*.json as committed)."""
    files = {path: json.loads((ROOT / path).read_text()) for path in (ablation.EVAL, ablation.TRAIN, ablation.PACK)}
    exp = Experiment("abl-tiny", "r" * 40, "main", None, flatten(read_params(PARAMS)), files)
    for question in QUESTIONS:
        for metric in question.metrics:
            assert isinstance(metric.read(exp), float), (question.key, metric.label)
            for label, read in metric.trivial:
                assert read(exp) is not None, (question.key, metric.label, label)


# --- `dvc exp show --json` as DVC 3 prints it, for the runs of the plan


def entry(run, metrics: dict | None, params: dict, error: dict | None = None, epochs: float = 3.0) -> dict:
    nested = apply_overrides(params, {**run.overrides, "train.epochs": epochs}, run.recipe)
    files = {path: {"data": data} for path, data in (metrics or {}).items()}
    return {
        "rev": (run.recipe * 40)[:40],
        "name": run.name,
        "data": {"params": {"params.yaml": {"data": nested}}, "metrics": files},
        "error": error,
    }


def exp_show(*entries: dict, executors: dict | None = None) -> list[dict]:
    baseline = {"rev": "b" * 40, "name": "main", "data": {}, "experiments": []}
    for e in entries:
        baseline["experiments"].append({"revs": [e], "executor": (executors or {}).get(e["name"]), "name": e["name"]})
    return [{"rev": "workspace", "name": None, "data": {}}, baseline]


def evaluation(recall: float, tokens: float = 30.0, gap: float = 0.05) -> dict:
    baselines = {
        "chance": 0.435,
        "first_option": {"pass_rate": 0.43, "n": 46},
        "always_true": {"pass_rate": 0.48, "n": 25},
    }
    side = {"acc": 0.62, "gap": gap, "n": 34, "first_total": 17}
    return {
        "splits": {
            "recall": {"pass_rate": recall, "baselines": baselines},
            "exam": {"ll_acc": 0.32, "baselines": {"chance": 0.25, "first_option": {"pass_rate": 0.26, "n": 81}}},
        },
        "contrastive": {"generated": side, "ll": {**side, "acc": 0.97}},
        "historian": {"mean_answer_tokens": tokens, "stopped_share": 0.5, "grounded_share": 0.75},
    }


def metrics(recall: float, steps: int = 210, **kw) -> dict:
    return {
        ablation.EVAL: evaluation(recall, **kw),
        ablation.TRAIN: {"total_steps": steps, "model_step": steps},
        ablation.PACK: {"train": {"useful_token_share": 0.98}},
    }


def test_skip_logic(runs, params):
    tiny, jeopardy = runs[0], runs[1]
    done = parse_exp_show(exp_show(entry(tiny, metrics(0.4), params)))
    assert decide(tiny, ablation.find(done, "abl-tiny"), force=False)[0] == ablation.SKIP
    assert decide(jeopardy, ablation.find(done, "abl-jeopardy-bot"), force=False)[0] == ablation.RUN
    assert decide(tiny, ablation.find(done, "abl-tiny"), force=True)[0] == ablation.FORCE
    other = parse_exp_show(exp_show(entry(tiny, metrics(0.4), params, epochs=2.0)))
    assert decide(tiny, ablation.find(other, "abl-tiny"), force=False)[0] == ablation.REPLACE
    failed = parse_exp_show(exp_show(entry(tiny, None, params, error={"type": "ReproductionError"})))
    assert decide(tiny, ablation.find(failed, "abl-tiny"), force=False)[0] == ablation.RUN
    queued = parse_exp_show(exp_show(entry(tiny, None, params), executors={"abl-tiny": {"state": "queued"}}))
    assert decide(tiny, ablation.find(queued, "abl-tiny"), force=True)[0] == ablation.BUSY
    assert ablation.commands(tiny, ablation.REPLACE) == [
        ["dvc", "exp", "remove", "abl-tiny"],
        ["dvc", "exp", "run", "--temp", "-n", "abl-tiny", "-S", "train.epochs=3.0"],
    ]
    assert ablation.commands(tiny, ablation.FORCE)[0][:7] == ["dvc", "exp", "run", "--temp", "-n", "abl-tiny", "-f"]
    assert ablation.commands(tiny, ablation.SKIP) == []


def test_dry_run_prints_the_dvc_commands_only(params, runs, tmp_path, capsys, monkeypatch):
    path = tmp_path / "exps.json"
    path.write_text(json.dumps(exp_show(entry(runs[0], metrics(0.4), params))))
    monkeypatch.setattr(cli, "execute", lambda command: pytest.fail("dry run ran " + " ".join(command)))
    assert cli.main(["run", "--dry-run", "--input", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "# row 1/6 tiny: abl-tiny already ran with these params (--force reruns it)",
        "# row 2/6 jeopardy-bot: not run yet",
        "dvc exp run --temp -n abl-jeopardy-bot -S encode.mix.qa=1.0 -S encode.mix.contrastive=0.0 "
        "-S encode.mix.qpt=0.0 -S encode.mix.raw=0.0 -S train.epochs=3.0",
        "# row 3/6 contrastive-no-swap: not run yet",
        "dvc exp run --temp -n abl-contrastive-no-swap -S contrast_swap.mirror=false -S train.epochs=3.0",
        "# row 4/6 bleed-over: not run yet",
        "dvc exp run --temp -n abl-bleed-over -S train.isolation=false -S train.epochs=3.0",
        "# row 5/6 padded: not run yet",
        "dvc exp run --temp -n abl-padded -S 'pack.mode='\"'\"'padded'\"'\"'' -S train.epochs=3.0",
        "# row 6/6 constant-wd: not run yet",
        "dvc exp run --temp -n abl-constant-wd -S train.weight_decay=0.1 -S train.weight_decay_late=0.1 "
        "-S train.epochs=3.0",
    ]
    assert cli.main(["run", "--dry-run", "--epochs", "2", "--force", "--input", str(path)]) == 0
    out = capsys.readouterr().out
    assert "dvc exp run --temp -n abl-tiny -f -S train.epochs=2.0" in out


def test_a_failed_row_is_reported_and_the_others_still_run(runs):
    ran, echoed = [], []

    def execute(command):
        ran.append(command[4:6])
        return 1 if "abl-bleed-over" in command else 0

    outcomes = run_rows(runs, [], execute, echoed.append)
    assert [c[1] for c in ran] == [f"abl-{r}" for r in RECIPES]  # one after another, all of them
    assert [o.returncode for o in outcomes] == [0, 0, 0, 1, 0, 0]
    assert echoed[6].startswith("row 4/6 bleed-over: not run yet: dvc exp run --temp -n abl-bleed-over")
    assert echoed[7].startswith("row 4/6 bleed-over: FAILED (exit 1) in 0 min")


def test_run_exits_non_zero_when_a_row_failed_and_still_prints_the_table(params, runs, capsys, monkeypatch):
    monkeypatch.setattr(cli, "params_modified", lambda path: False)
    monkeypatch.setattr(cli, "read_experiments", lambda args: parse_exp_show(exp_show()))
    monkeypatch.setattr(cli, "execute", lambda command: 2 if "abl-padded" in command else 0)
    assert cli.main(["run"]) == 1
    captured = capsys.readouterr()
    assert (
        "row 5/6 padded: FAILED (exit 2)" in captured.out
        and "| padded: one record per context [not run] |" in captured.out
    )
    assert "1 row(s) failed: padded" in captured.err
    monkeypatch.setattr(cli, "params_modified", lambda path: True)
    assert cli.main(["run"]) == 2
    assert "differs from the last commit" in capsys.readouterr().err


def table_of(markdown: str, title: str) -> dict[str, list[str]]:
    """Row label -> cells of the Markdown table under `### title`."""
    section = markdown.split(f"### {title}\n\n", 1)[1].split("\n\n", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split(" | ")] for line in section.splitlines()]
    return {row[0].strip(): row[1:] for row in rows[2:]}


def test_the_table_from_experiment_metrics(params, runs, tmp_path, capsys):
    by = {run.recipe: run for run in runs}
    raw = exp_show(
        entry(by["tiny"], metrics(0.4), params),
        entry(by["jeopardy-bot"], metrics(0.35, tokens=256.0), params),
        entry(by["padded"], metrics(0.3, steps=1050), params),
        entry(by["constant-wd"], metrics(0.38), params, epochs=2.0),
        entry(by["bleed-over"], None, params, error={"type": "ReproductionError"}),
    )
    text = render(runs, parse_exp_show(raw), 3.0)
    jeopardy = table_of(text, QUESTIONS[0].title)
    assert jeopardy["QA + contrastive + Q-PT (shipped)"] == ["abl-tiny", "210", "—", "30.0", "0.500", "0.750", "0.400"]
    assert jeopardy["QA only"][3] == "256.0 (+226.0)" and jeopardy["QA only"][6] == "0.350 (-0.050)"
    assert jeopardy["*never stops (the answer cap)*"][3:5] == ["256", "0.000"]
    assert jeopardy["*always the first option*"][6] == "0.430 (n=46)"
    swap = table_of(text, QUESTIONS[1].title)
    assert swap["swap off: as generated [not run]"][1:] == ["—"] * 7
    assert swap["*chance (uniform guess on the choice items)*"][3:7] == ["0.500", "0.000", "0.500", "0.000"]
    assert swap["*always the first option*"][3:7] == ["0.500", "1.000", "0.500", "1.000"]
    isolation = table_of(text, QUESTIONS[2].title)
    assert isolation["packed, bleed-over (isolation off) [failed]"][1:] == ["—"] * 5
    assert isolation["padded: one record per context"][:3] == ["abl-padded", "1050", "—"]
    assert "more optimizer steps (5.0x here)" in text
    wd = table_of(text, QUESTIONS[3].title)
    assert wd["constant 0.1 [other params]"][3] == "0.380 (-0.020)"  # shown, marked: another budget
    # `table --write` prints and writes the same Markdown
    path, out = tmp_path / "exps.json", tmp_path / "ablation.md"
    path.write_text(json.dumps(raw))
    assert cli.main(["table", "--input", str(path), "--write", str(out)]) == 0
    assert capsys.readouterr().out == out.read_text() == text


def test_row_times_come_from_the_run(runs):
    outcomes = [ablation.Outcome("tiny", ablation.RUN, 0, 191.0)]
    raw = exp_show(entry(runs[0], metrics(0.4), read_params(PARAMS)))
    text = render(runs, parse_exp_show(raw), 3.0, outcomes)
    assert table_of(text, QUESTIONS[3].title)["two-phase: 0.1, then 0.05 after train.wd_switch_epochs=2 (shipped)"][
        :3
    ] == ["abl-tiny", "210", "3 min 11 s"]


def test_seeds_run_every_row_once_per_train_seed(params):
    runs = plan(load_registry(), params, seeds=[1945, 7])
    assert [run.name for run in runs[:4]] == [
        "abl-tiny-s1945",
        "abl-tiny-s7",
        "abl-jeopardy-bot-s1945",
        "abl-jeopardy-bot-s7",
    ]
    assert len(runs) == 2 * len(RECIPES)
    assert runs[1].overrides == {"train.epochs": 3.0, "train.seed": 7} and runs[1].params["train.seed"] == 7
    assert runs[3].params["encode.mix.qpt"] == 0.0 and runs[3].seed == 7
    assert ablation.commands(runs[1], ablation.RUN) == [
        ["dvc", "exp", "run", "--temp", "-n", "abl-tiny-s7", "-S", "train.epochs=3.0", "-S", "train.seed=7"]
    ]
    for bad in ([], [7, 7]):
        with pytest.raises(ValueError, match="distinct train seeds"):
            plan(load_registry(), params, seeds=bad)


def test_the_table_over_seeds_shows_mean_and_sd(params, capsys):
    runs = plan(load_registry(), params, seeds=[1945, 7, 2])
    by = {run.name: run for run in runs}
    raw = exp_show(
        entry(by["abl-tiny-s1945"], metrics(0.4), params),
        entry(by["abl-tiny-s7"], metrics(0.3), params),
        entry(by["abl-tiny-s2"], metrics(0.35), params),
        entry(by["abl-constant-wd-s1945"], metrics(0.5), params),
        entry(by["abl-constant-wd-s7"], metrics(0.3), params),
        entry(by["abl-constant-wd-s2"], None, params, error={"type": "ReproductionError"}),
    )
    outcomes = [ablation.Outcome("tiny", ablation.RUN, 0, 60.0), ablation.Outcome("tiny", ablation.RUN, 0, 70.0)]
    text = render(runs, parse_exp_show(raw), 3.0, outcomes)
    wd = table_of(text, QUESTIONS[3].title)
    tiny = wd["two-phase: 0.1, then 0.05 after train.wd_switch_epochs=2 (shipped)"]
    assert tiny[:4] == ["abl-tiny-s1945/7/2", "210", "2 min 10 s", "0.350 ±0.050"]  # mean ± sample SD, no difference
    constant = wd["constant 0.1 [2/3 seeds; failed]"]
    assert constant[:1] + constant[3:4] == ["abl-constant-wd-s1945/7/2", "0.400 ±0.141 (+0.050)"]
    assert wd["*always the first option*"][3] == "0.430 (n=46)"  # the trivial rows: one baseline run's
    swap = table_of(text, QUESTIONS[1].title)
    assert swap["swap off: as generated [0/3 seeds; not run]"][1:] == ["—"] * 7
    assert "Every row ran once per train seed (1945, 7, 2" in text
    assert "once per train seed" not in render(plan(load_registry(), params), parse_exp_show(raw), 3.0)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["table", "--seeds", "7,x"])
    assert exit_info.value.code == 2 and "comma-separated integer seeds" in capsys.readouterr().err


def test_help_explains_and_runs_nothing(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "python -m tools.ablation run --dry-run" in out and "jeopardy-bot" in out and "--force" in out


STAGE = """\
import json
import yaml

p = yaml.safe_load(open("params.yaml"))
recall = 0.4 - 0.1 * (not p["train"]["isolation"]) - 0.05 * (p["pack"]["mode"] == "padded")
steps = int(70 * p["train"]["epochs"] * (5 if p["pack"]["mode"] == "padded" else 1))
json.dump({"splits": {"recall": {"pass_rate": recall, "baselines": {"chance": 0.435}}}}, open("metrics/eval.json", "w"))
json.dump({"total_steps": steps}, open("metrics/train.json", "w"))
"""


@pytest.mark.slow
def test_two_real_experiments_then_every_row_is_skipped(tmp_path, capsys, monkeypatch):
    """Against real `dvc exp run --temp` / `dvc exp show`: the -S values come back as the params
    the skip logic expects, so a second `run` starts nothing."""
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    # two rows keep it short: the baseline and padded
    isolation = dataclasses.replace(QUESTIONS[2], rows=QUESTIONS[2].rows[::2])
    monkeypatch.setattr(ablation, "QUESTIONS", (isolation,))
    monkeypatch.setattr(ablation_table, "QUESTIONS", (isolation,))
    dvc_yaml = (
        f"stages:\n  train:\n    cmd: {sys.executable} stage.py\n    deps: [stage.py]\n"
        "    params: [train, pack, encode, contrast_swap]\n"
        "    metrics:\n      - metrics/eval.json: {cache: false}\n      - metrics/train.json: {cache: false}\n"
    )
    (tmp_path / "metrics").mkdir()
    files = {"params.yaml": PARAMS.read_text(), "stage.py": STAGE, "dvc.yaml": dvc_yaml}
    committed_dvc_repo(tmp_path, files)
    monkeypatch.chdir(tmp_path)
    started = []
    real_execute = cli.execute
    monkeypatch.setattr(cli, "execute", lambda command: started.append(command) or real_execute(command))
    assert cli.main(["run"]) == 0
    assert [c[5] for c in started] == ["abl-tiny", "abl-padded"]
    rows = table_of(capsys.readouterr().out, isolation.title)
    padded = rows["padded: one record per context"]
    assert padded[:2] == ["abl-padded", "1050"] and padded[2].endswith(" s") and padded[3] == "0.350 (-0.050)"
    assert rows["packed, records isolated (shipped)"][1] == "210"
    started.clear()
    assert cli.main(["run"]) == 0
    assert started == [] and "row 2/2 padded: skipped, abl-padded already ran" in capsys.readouterr().out
