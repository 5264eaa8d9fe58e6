"""tools/summary.py: the lines make repro ends with."""

import json

from tools import summary


def test_summary_reads_each_split_next_to_its_baselines(tmp_path, capsys):
    evaluation = {
        "splits": {
            "recall": {
                "n": 150,
                "pass_rate": 0.42,
                "baselines": {"always_true": {"pass_rate": 0.48, "n": 25}, "chance": 0.42},
            },
            "exam": {"n": 81, "ll_acc": 0.37, "ll_acc_norm": 0.41, "generated_acc": 0.26, "chance": 0.25},
        },
        "contrastive": {"generated": {"acc": 0.96, "gap": -0.07, "n": 28}},
        "answers": {"stopped_share": 0.92},
    }
    (tmp_path / "eval.json").write_text(json.dumps(evaluation))
    (tmp_path / "train.json").write_text(json.dumps({"model_step": 700, "best_recall_loss": 0.81, "val_loss": 7.8}))
    assert summary.main(["--eval", str(tmp_path / "eval.json"), "--train", str(tmp_path / "train.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "train: step 700 shipped (best recall loss 0.81), val loss 7.80"
    assert "recall: pass 0.42 of 150 (always_true 0.48 of 25, chance 0.42)" in out
    assert "exam: log-likelihood acc 0.37 / acc_norm 0.41, generated 0.26 of 81 (chance 0.25)" in out
    assert "contrastive: acc 0.96, gap -0.07 of 28" in out


def test_missing_metrics_are_a_clear_error(tmp_path, capsys):
    assert summary.main(["--eval", str(tmp_path / "none.json"), "--train", str(tmp_path / "none.json")]) == 2
    assert "run the pipeline first" in capsys.readouterr().err
