"""evaluate: the student model answers held-out questions, a judge grades them PASS or FAIL.

The questions are the val split's qa and contrastive records (articles the encode stage held
out, never a training article; evaluation/questions.py says why qpt records are not
graded), `max_questions` of them drawn stratified by prompt type. The model answers each
greedily (`temperature: 0`) from the ChatML prompt; the judge grades it against the record's
reference answer:
  heuristic  offline default: token recall plus hard checks on labels, options, years,
             numbers and names (evaluation/judge.py)
  llm        an LLM backend (`judge_backend`: openai | transformers, built by llm/factory.py) shown the source
             window, question, reference and answer; `judge_concurrency` requests in flight.
             An unparseable verdict is UNPARSED and a failed request ERROR: neither is a pass.
Also measured: validation loss and perplexity over the packed val contexts, the positional-bias
check on two-option contrastive questions, and the "historian" check: answers to open prompts
("Tell me about the Eastern Front.") — mean length in tokens and the share that stop properly.
The logic is evaluation/evaluate.py (README.md, "evaluate").

Inputs:  a model (data/model/model.pt, a checkpoint or an exported folder), data/tokenizer,
         data/tokens (val split index), data/shuffled.jsonl, data/windows.jsonl, data/packed
Outputs: metrics/eval.json (for `dvc metrics diff`), metrics/eval_samples.jsonl (to read)

Example:
  python -m stages.evaluate --params params.yaml --model data/model/model.pt \
      --tokenizer data/tokenizer --tokens data/tokens --records data/shuffled.jsonl \
      --windows data/windows.jsonl --packed data/packed \
      --metrics metrics/eval.json --samples metrics/eval_samples.jsonl
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from pathlib import Path

import torch

from common.cli import setup_logging
from common.devices import pick_device
from common.files import read_jsonl, write_json, write_jsonl
from common.params import load_section
from dataset.packed_files import DataError
from dataset.tokenizer import Tokenizer
from evaluation.evaluate import (
    EvaluateParams,
    build_judge,
    check_params,
    grade_all,
    student_answers,
    validation_metrics,
)
from evaluation.questions import (
    answer_stats,
    open_rows,
    sample_questions,
    sample_rows,
    summarise_eval,
    val_questions,
)
from model.gpt import GPT
from model.inference import load_model

log = logging.getLogger("evaluate")


def load_everything(
    args: argparse.Namespace,
) -> tuple[EvaluateParams, Tokenizer, list[dict], dict[str, str], GPT, torch.device]:
    """(params, tokenizer, val questions, window id -> text, model, device); raises on bad inputs."""
    params = load_section(args.params, "evaluate", EvaluateParams)
    check_params(params, f"{args.params}:evaluate")
    if not args.model.exists():
        raise FileNotFoundError(f"{args.model}: model not found (run the train stage, or pass an exported folder)")
    for path in (args.tokens / "meta.json", args.records, args.windows):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found (run the pipeline up to encode first)")
    tokenizer = Tokenizer.load(args.tokenizer)
    meta = json.loads((args.tokens / "meta.json").read_text(encoding="utf-8"))
    train_articles = set(meta["splits"]["train"]["article_titles"])
    val_index = list(read_jsonl(args.tokens / "val.records.jsonl"))
    questions = val_questions(read_jsonl(args.records), val_index, train_articles)
    wanted = {q["window"] for q in questions}
    windows = {w["id"]: w["text"] for w in read_jsonl(args.windows) if w.get("id") in wanted}
    device = pick_device(params.device, "evaluate.device")
    model, config = load_model(args.model, device=device)
    if config.vocab_size != tokenizer.vocab_size:
        raise ValueError(
            f"{args.model}: vocab_size {config.vocab_size} != the tokenizer's {tokenizer.vocab_size} "
            f"({args.tokenizer}): not the tokenizer this model was trained with"
        )
    return params, tokenizer, questions, windows, model, device


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument(
        "--model",
        "--checkpoint",
        dest="model",
        type=Path,
        required=True,
        help="model.pt, a training checkpoint or an exported model folder",
    )
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--tokens", type=Path, required=True, help="encode output (val split index)")
    parser.add_argument("--records", type=Path, required=True, help="the records the encode stage read")
    parser.add_argument("--windows", type=Path, required=True, help="source windows, shown to an llm judge")
    parser.add_argument("--packed", type=Path, required=True, help="pack output (val contexts for the loss)")
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--samples", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params, tokenizer, questions, windows, model, device = load_everything(args)
        judge = build_judge(params)  # before the model runs: a bad judge config fails in a second
    except (ValueError, OSError, KeyError) as exc:  # ParamsError, ModelLoadError, DataError... are ValueErrors
        log.error("%s", exc.args[0] if isinstance(exc, KeyError) else exc)
        return 2
    asked = sample_questions(questions, params.max_questions, params.seed)
    log.info("val_questions=%d asked=%d judge=%s device=%s", len(questions), len(asked), judge.name, device)
    opens = [[{"role": "user", "content": p}] for p in params.open_prompts]
    try:
        answers = student_answers(model, tokenizer, [q["prompt"] for q in asked], params, params.max_new_tokens)
        open_answers = student_answers(model, tokenizer, opens, params, params.open_max_new_tokens, "historian")
        loss = validation_metrics(model, args.packed, params, device)
        verdicts = grade_all(judge, asked, answers, windows)
    except DataError as exc:
        log.error("%s", exc)
        return 2
    finally:
        with contextlib.suppress(Exception):  # closing is best effort; the run's outcome is decided
            judge.close()
    metrics = {
        **summarise_eval(asked, answers, verdicts),
        **loss,
        "historian": answer_stats(open_answers),
        "judge": judge.name,
        "val_questions": len(questions),
    }
    write_jsonl(args.samples, [*sample_rows(asked, answers, verdicts), *open_rows(params.open_prompts, open_answers)])
    write_json(args.metrics, metrics)
    q = metrics["questions"]
    log.info("asked=%d pass_rate=%.3f pass=%d fail=%d unparsed=%d error=%d val_loss=%s gap=%s historian_tokens=%s",
             q["total"], metrics["pass_rate"], q["pass"], q["fail"], q["unparsed"], q["error"], loss["val_loss"],
             metrics["positional_bias"]["gap"], metrics["historian"]["mean_answer_tokens"])  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
