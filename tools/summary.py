"""summary: the key figures of the last run, read next to their baselines (make repro ends with it).

python -m tools.summary                       # metrics/eval.json and metrics/train.json
python -m tools.summary --eval other/eval.json --train other/train.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def fmt(value: object) -> str:
    return "-" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)


def baseline_text(split: dict) -> str:
    parts = []
    for name, baseline in sorted(split.get("baselines", {}).items()):
        if isinstance(baseline, dict):  # a baseline grades only the items it applies to: say how many
            if baseline.get("pass_rate") is not None:
                parts.append(f"{name} {fmt(baseline['pass_rate'])} of {baseline.get('n')}")
        elif baseline is not None:
            parts.append(f"{name} {fmt(baseline)}")
    return ", ".join(parts)


def summary_lines(evaluation: dict, train: dict) -> list[str]:
    """A few lines a person reads after a run: what the model knows, against chance and baselines."""
    lines = [
        f"train: step {fmt(train.get('model_step', train.get('step')))} shipped "
        f"(best recall loss {fmt(train.get('best_recall_loss'))}), val loss {fmt(train.get('val_loss'))}"
    ]
    splits = evaluation.get("splits", {})
    for name in ("recall", "verbatim", "unseen"):
        if name in splits:
            split = splits[name]
            lines.append(f"{name}: pass {fmt(split.get('pass_rate'))} of {split.get('n')} ({baseline_text(split)})")
    for name in ("exam", "exam_unseen"):
        if name in splits:
            split = splits[name]
            lines.append(
                f"{name}: log-likelihood acc {fmt(split.get('ll_acc'))} / acc_norm {fmt(split.get('ll_acc_norm'))}, "
                f"generated {fmt(split.get('generated_acc'))} of {split.get('n')} (chance {fmt(split.get('chance'))})"
            )
    generated = evaluation.get("contrastive", {}).get("generated")
    if generated:
        lines.append(
            f"contrastive: acc {fmt(generated.get('acc'))}, gap {fmt(generated.get('gap'))} of {generated.get('n')}"
        )
    answers = evaluation.get("answers", {})
    if answers:
        lines.append(f"answers stopped at <|im_end|>: {fmt(answers.get('stopped_share'))}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval", type=Path, default=Path("metrics/eval.json"))
    parser.add_argument("--train", type=Path, default=Path("metrics/train.json"))
    args = parser.parse_args(argv)
    try:
        evaluation = json.loads(args.eval.read_text(encoding="utf-8"))
        train = json.loads(args.train.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        print(f"summary: cannot read the metrics ({exc}); run the pipeline first", file=sys.stderr)
        return 2
    print("\n".join(summary_lines(evaluation, train)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
