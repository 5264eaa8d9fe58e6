"""orchestrate: alternate training and judged validation as separate processes.

Train `slice_steps` steps (python -m stages.train --stop-after N) → the process exits and
frees the GPU → evaluate the newest checkpoint with the judge (python -m stages.evaluate
--model <checkpoint>) → resume training from that checkpoint, until the run's last step
is trained and judged. The judge model and the training model never share VRAM.

Judge results go to <checkpoints>/<run>/judge.json (one entry per judged step, written
atomically); the trainer draws them in the live monitor. Killing the orchestrator at any
point loses nothing: on the next start, a checkpoint not yet judged is judged first, then
training resumes from the newest checkpoint.

Example (the same paths as the train and evaluate stages in dvc.yaml):
  python -m tools.orchestrate --params params.yaml
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from common.cli import setup_logging
from common.files import write_json
from common.params import ParamsError, load_section
from common.stores import shared_path
from dataset.tokenizer import TokenizerError
from training.checkpoint import CheckpointError, list_checkpoints, load_checkpoint
from training.identity import identity_from_inputs
from training.monitor import render_monitor
from training.params import TrainParams

log = logging.getLogger("orchestrate")


@dataclass(frozen=True)
class OrchestrateParams:
    slice_steps: int  # training steps per slice before each judged validation


def checkpoint_step(path: Path) -> int:
    return int(path.stem.split("-")[1])


def read_judged(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.exists() else []


def judge_entry(step: int, metrics: dict) -> dict:
    """What the monitor and the log keep of one judged validation."""
    splits = metrics.get("splits", {})
    headline = splits.get("recall") or splits.get("unseen") or {}  # recall is the headline; unseen when absent
    return {
        "step": step,
        "pass_rate": headline.get("pass_rate"),
        "exam_ll_acc": (splits.get("exam") or {}).get("ll_acc"),
        "val_loss": metrics.get("val_loss"),
        "stopped_properly": (metrics.get("historian") or {}).get("stopped_share"),
    }


def run(command: list[str]) -> None:
    log.info("run=%s", " ".join(command))
    code = subprocess.call(command)
    if code != 0:
        raise RuntimeError(f"{command[2]} exited with {code}; rerun the orchestrator to resume")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--packed", default="data/packed")
    parser.add_argument("--tokenizer", default="data/tokenizer")
    parser.add_argument("--tokens", default="data/tokens")
    parser.add_argument("--records", default="data/shuffled.jsonl")
    parser.add_argument("--exams", default="data/exams", help="quiz files evaluate scores (exam split)")
    parser.add_argument("--windows", default="data/windows.jsonl")
    parser.add_argument("--checkpoints", type=Path, default=Path("data/checkpoints"))
    parser.add_argument("--out", default="data/model")
    parser.add_argument("--metrics", default="metrics/train.json")
    parser.add_argument("--plot", type=Path, default=Path("metrics/train_monitor.png"))
    parser.add_argument("--live", default="dvclive")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params = load_section(args.params, "orchestrate", OrchestrateParams)
        train_params = load_section(args.params, "train", TrainParams)
        if params.slice_steps < 1:
            raise ParamsError(f"{args.params}:orchestrate.slice_steps: must be >= 1")
        args.checkpoints = shared_path(args.checkpoints)  # where stages.train puts them too
        return orchestrate(params, train_params, args)
    except (ParamsError, CheckpointError, TokenizerError, RuntimeError) as exc:
        log.error("%s", exc)
        return 2


def orchestrate(params: OrchestrateParams, train_params: TrainParams, args) -> int:
    run_dir = args.checkpoints / identity_from_inputs(train_params, args.packed, args.tokenizer).run_id
    judged_path = run_dir / "judge.json"
    python = sys.executable
    train_cmd = [
        python,
        "-m",
        "stages.train",
        "--params",
        args.params,
        "--packed",
        args.packed,
        "--tokenizer",
        args.tokenizer,
        "--checkpoints",
        str(args.checkpoints),
        "--out",
        args.out,
        "--metrics",
        args.metrics,
        "--plot",
        str(args.plot),
        "--live",
        args.live,
    ]
    while True:
        checkpoints = list_checkpoints(run_dir)
        judged = read_judged(judged_path)
        if checkpoints:
            newest = checkpoints[-1]
            step = checkpoint_step(newest)
            if step not in {entry["step"] for entry in judged}:
                evaluate(args, newest, step, run_dir)
                continue
            state = load_checkpoint(newest)
            if step >= state["total_steps"]:
                render_monitor(
                    state["history"] | {"judge": read_judged(judged_path)}, state.get("title", ""), args.plot
                )
                log.info("done step=%d judged=%d", step, len(read_judged(judged_path)))
                return 0
        else:
            step = 0
        run([*train_cmd, "--stop-after", str(step + params.slice_steps)])


def evaluate(args, checkpoint: Path, step: int, run_dir: Path) -> None:
    folder = run_dir / "eval"
    folder.mkdir(parents=True, exist_ok=True)
    metrics = folder / f"step-{step:08d}.json"
    run(
        [
            sys.executable,
            "-m",
            "stages.evaluate",
            "--params",
            args.params,
            "--model",
            str(checkpoint),
            "--tokenizer",
            args.tokenizer,
            "--tokens",
            args.tokens,
            "--records",
            args.records,
            "--windows",
            args.windows,
            "--packed",
            args.packed,
            "--exams",
            args.exams,
            "--metrics",
            str(metrics),
            "--samples",
            str(folder / f"step-{step:08d}.samples.jsonl"),
        ]
    )
    judged = [e for e in read_judged(run_dir / "judge.json") if e["step"] != step]
    judged.append(judge_entry(step, json.loads(metrics.read_text())))
    write_json(run_dir / "judge.json", sorted(judged, key=lambda e: e["step"]))
    log.info("judged step=%d pass_rate=%s", step, judged[-1]["pass_rate"])


if __name__ == "__main__":
    sys.exit(main())
