"""tools.compare: the key params and metrics of DVC experiments, on recorded `dvc exp show
--json` output and on a real two-experiment repository."""

import json
import sys

import pytest

from tests.dvc_helpers import committed_dvc_repo
from tools import compare


def eval_metrics(recall: float, chance: float = 0.425, gap: float = -0.07) -> dict:
    return {
        "val_loss": 3.25,
        "splits": {
            "recall": {
                "pass_rate": recall,
                "n": 150,
                "baselines": {"chance": chance, "first_option": {"pass_rate": 0.4}},
            },
            "exam": {"ll_acc": 0.37, "ll_acc_norm": 0.41, "generated_acc": 0.26, "baselines": {"chance": 0.25}},
        },
        "contrastive": {"generated": {"gap": gap}},
    }


def entry(rev: str, name: str | None, params: dict, evaluation: dict | None, error: dict | None = None) -> dict:
    metrics = {} if evaluation is None else {"metrics/eval.json": {"data": evaluation}}
    metrics["metrics/train.json"] = {"data": {"model_step": 700, "val_loss": 9.9}}
    return {
        "rev": rev,
        "name": name,
        "data": {"rev": rev, "params": {"params.yaml": {"data": params}}, "metrics": metrics, "deps": {}, "outs": {}},
        "error": error,
        "experiments": None,
    }


def params(lr: float, seed: int = 1, variant: str = "tiny") -> dict:
    return {
        "train": {"variant": variant, "lr": lr, "betas": [0.9, 0.95]},
        "tokenizer": {"vocab_size": 4000},
        "pack": {"seed": seed},
    }


def recorded(*experiments: dict) -> list[dict]:
    """The shape `dvc exp show --json` prints (DVC 3.x): the workspace row, then the baseline
    commit with its experiments, each group holding one rev and its executor."""
    baseline = entry("a" * 40, "main", params(0.004), eval_metrics(0.42))
    baseline["experiments"] = [
        {"revs": [e], "executor": e.pop("executor", None), "name": e["name"]} for e in experiments
    ]
    return [entry("workspace", None, params(0.004), eval_metrics(0.42)), baseline]


def test_rows_show_the_differing_params_and_the_key_metrics():
    raw = recorded(
        entry("b" * 40, "fast-lr", params(0.01), eval_metrics(0.5, gap=0.0)),
        entry("c" * 40, "seed-7", params(0.004, seed=7), eval_metrics(0.3)),
    )
    header, rows, left_out = compare.table(compare.parse_exp_show(raw))
    assert header[:5] == ["experiment", "train.variant", "tokenizer.vocab_size", "pack.seed", "train.lr"]
    assert header[5:] == [name for name, _ in compare.METRIC_COLUMNS]
    assert [row[:5] for row in rows] == [
        ["workspace", "tiny", "4000", "1", "0.004"],
        ["main", "tiny", "4000", "1", "0.004"],
        ["  fast-lr", "tiny", "4000", "1", "0.01"],
        ["  seed-7", "tiny", "4000", "7", "0.004"],
    ]
    cells = dict(zip(header, rows[2], strict=True))
    assert cells["recall"] == "0.500 (0.425)"
    assert cells["exam ll"] == "0.370 (0.250)" and cells["exam norm"] == "0.410" and cells["exam gen"] == "0.260"
    assert cells["val loss"] == "3.250"  # the shipped model's (eval.json), not the last step's
    assert cells["gap"] == "0.000" and cells["step"] == "700"
    assert cells["verbatim"] == cells["xunseen ll"] == "-"  # splits this run has not got
    assert left_out == []
    assert "train.betas" not in header  # shared by every row: not a column


def test_a_failed_or_queued_experiment_is_listed_with_its_state_and_no_metrics():
    queued = entry("d" * 40, "later", params(0.02), None)
    queued["executor"] = {"state": "queued", "name": "later", "local": None}
    failed = entry(
        "e" * 40, "broken", params(0.03), None, error={"type": "ReproductionError", "message": "train failed"}
    )
    header, rows, _ = compare.table(compare.parse_exp_show(recorded(queued, failed)))
    by_name = {row[0].strip(): dict(zip(header, row, strict=True)) for row in rows}
    assert by_name["later (queued)"]["recall"] == "-"
    assert by_name["broken (failed)"]["train.lr"] == "0.03"


def test_too_many_differing_params_are_named_below_the_table():
    many = {f"k{i}": 0 for i in range(12)}
    other = {f"k{i}": 1 for i in range(12)}
    raw = recorded(entry("b" * 40, "wide", {**params(0.004), "x": other}, eval_metrics(0.4)))
    raw[0]["data"]["params"]["params.yaml"]["data"]["x"] = many
    raw[1]["data"]["params"]["params.yaml"]["data"]["x"] = many
    header, _, left_out = compare.table(compare.parse_exp_show(raw), ["train.lr"])
    params_shown = header[1 : header.index("recall")]
    assert len(params_shown) == compare.MAX_PARAM_COLUMNS
    assert params_shown[:3] == ["train.variant", "tokenizer.vocab_size", "train.lr"]
    assert len(left_out) == 12 - (compare.MAX_PARAM_COLUMNS - 3)


def test_main_prints_text_and_markdown(tmp_path, capsys):
    path = tmp_path / "exps.json"
    path.write_text(json.dumps(recorded(entry("b" * 40, "fast-lr", params(0.01), eval_metrics(0.5)))))
    assert compare.main(["--input", str(path)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].split()[:3] == ["experiment", "train.variant", "tokenizer.vocab_size"]
    assert set(text[1]) == {"-", " "}
    assert text[4].split()[:2] == ["fast-lr", "tiny"] and "0.500 (0.425)" in text[4]
    assert compare.main(["--input", str(path), "--format", "markdown"]) == 0
    markdown = capsys.readouterr().out.splitlines()
    assert markdown[0].startswith("| experiment | train.variant |") and markdown[1].startswith("|---|")
    assert markdown[4].startswith("| fast-lr | tiny | 4000 | 0.01 | 0.500 (0.425) |")


@pytest.mark.parametrize(
    "content, message",
    [("{oops", "Expecting property name"), ('{"rev": "workspace"}', "expected the JSON list")],
)
def test_bad_input_is_a_clear_error(tmp_path, capsys, content, message):
    path = tmp_path / "exps.json"
    path.write_text(content)
    assert compare.main(["--input", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_outside_a_dvc_repository_the_error_says_so(tmp_path, capsys):
    assert compare.main(["--repo", str(tmp_path)]) == 2
    assert "not inside of a DVC repository" in capsys.readouterr().err


STAGE = """\
import json
import yaml

lr = yaml.safe_load(open("params.yaml"))["train"]["lr"]
split = {"pass_rate": round(lr * 100, 3), "n": 150, "baselines": {"chance": 0.425}}
json.dump({"val_loss": round(1 / lr, 3), "splits": {"recall": split}}, open("metrics/eval.json", "w"))
"""


@pytest.mark.slow
def test_two_real_experiments_of_a_dvc_repository(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")

    dvc_yaml = (
        f"stages:\n  train:\n    cmd: {sys.executable} stage.py\n    deps: [stage.py]\n    params: [train]\n"
        "    metrics:\n      - metrics/eval.json: {cache: false}\n"
    )
    files = {"params.yaml": "train:\n  lr: 0.004\n  variant: tiny\n", "stage.py": STAGE, "dvc.yaml": dvc_yaml}
    (tmp_path / "metrics").mkdir()
    run = committed_dvc_repo(tmp_path, files)
    run("dvc", "exp", "run", "-q", "-n", "fast", "-S", "train.lr=0.01")
    run("dvc", "exp", "run", "-q", "-n", "slow", "-S", "train.lr=0.002")
    assert compare.main(["--repo", str(tmp_path)]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[2:]}
    assert set(rows) >= {"workspace", "fast", "slow"}
    assert rows["fast"][:5] == ["fast", "tiny", "-", "0.01", "1.000"]
    assert rows["slow"][:5] == ["slow", "tiny", "-", "0.002", "0.200"]
    assert rows["fast"][-3] == "100.000" and rows["slow"][-3] == "500.000"  # val loss
