"""evaluate: the student model answers held-out questions, a judge grades them PASS or FAIL.

The questions are the val split's qa and contrastive records (articles the tokenize stage held
out, never a training article; evaluation/questions.py says why qpt records are not
graded), `max_questions` of them drawn stratified by prompt type. The model answers each
greedily (`temperature: 0`) from the ChatML prompt; the judge grades it against the record's
reference answer:
  heuristic  offline default: token recall plus hard checks on labels, options, years,
             numbers and names (evaluation/judge.py)
  llm        any generate backend (`judge_backend`: openai | transformers) shown the source
             window, question, reference and answer; `judge_concurrency` requests in flight.
             An unparseable verdict is UNPARSED and a failed request ERROR: neither is a pass.
Also measured: validation loss and perplexity over the packed val contexts, the positional-bias
check on two-option contrastive questions, and the "historian" check: answers to open prompts
("Tell me about the Eastern Front.") — mean length in tokens and the share that stop properly.

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
import dataclasses
import json
import logging
import math
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from common.cli import setup_logging
from common.io import read_jsonl, write_json, write_jsonl
from evaluation.judge_llm import LLMJudge, make_judge
from llm.openai_backend import OpenAIParams
from llm.transformers_backend import TransformersParams
from common.params import ParamsError, load_section
from model.inference import answer, load_model
from dataset.tokenizer import Tokenizer
from evaluation.questions import (
    answer_stats,
    open_rows,
    sample_questions,
    sample_rows,
    summarise_eval,
    val_questions,
)
from stages.train import validation_loss
from training.batches import DataError, load_packed

log = logging.getLogger("evaluate")


@dataclass(frozen=True)
class HeuristicParams:
    min_overlap: float  # share of the reference's new content words the answer must recall
    max_foreign_years: int  # other years the answer may offer when the reference has one
    max_foreign_numbers: int  # competing figures (>= 100, within 10x) the answer may offer


@dataclass(frozen=True)
class EvaluateParams:
    judge: str  # heuristic (offline) | llm
    judge_backend: str  # llm judge: openai | transformers
    judge_concurrency: int  # llm judge: requests in flight (transformers: its batch_size is used)
    max_questions: int  # graded questions, stratified by type; 0 = every val question
    max_new_tokens: int  # student answer budget for a question
    open_max_new_tokens: int  # student answer budget for an open prompt (historian check)
    temperature: float  # student sampling; 0 = greedy (deterministic)
    seed: int  # question sample, and sampling when temperature > 0
    device: str  # auto | cpu | cuda
    val_batch_size: int  # packed val contexts per forward for the validation loss
    max_val_batches: int  # 0 = every val context
    open_prompts: tuple[str, ...]  # the historian check's open questions
    heuristic: HeuristicParams
    openai: OpenAIParams
    transformers: TransformersParams


def check_params(params: EvaluateParams, where: str) -> None:
    problems = [
        ("judge", params.judge in ("heuristic", "llm"), "must be heuristic or llm"),
        ("judge_backend", params.judge_backend in ("openai", "transformers"), "must be openai or transformers"),
        ("judge_concurrency", params.judge_concurrency >= 1, "must be >= 1"),
        ("max_questions", params.max_questions >= 0, "must be >= 0 (0 = all)"),
        ("max_new_tokens", params.max_new_tokens >= 1, "must be >= 1"),
        ("open_max_new_tokens", params.open_max_new_tokens >= 1, "must be >= 1"),
        ("temperature", params.temperature >= 0, "must be >= 0 (0 = greedy)"),
        ("device", params.device in ("auto", "cpu", "cuda"), "must be auto, cpu or cuda"),
        ("val_batch_size", params.val_batch_size >= 1, "must be >= 1"),
        ("max_val_batches", params.max_val_batches >= 0, "must be >= 0 (0 = all)"),
    ]
    for key, ok, why in problems:
        if not ok:
            raise ParamsError(f"{where}.{key}: {why}, got {getattr(params, key)!r}")


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ParamsError("evaluate.device: cuda requested but no CUDA device is available")
    return torch.device(requested)


def build_judge(params: EvaluateParams):
    """(judge, threads): the LLM judge on its backend, or the heuristic one."""
    if params.judge == "heuristic":
        return make_judge("heuristic", **dataclasses.asdict(params.heuristic)), 1
    if params.judge_backend == "openai":
        judge = make_judge("llm", backend_params=params.openai, concurrency=params.judge_concurrency)
        return judge, params.judge_concurrency
    # TransformersChat batches whatever is queued: keep a whole batch in flight.
    return make_judge("llm", backend_params=params.transformers), params.transformers.batch_size


def grade_all(judge, questions: list[dict], answers: list[dict], windows: dict[str, str], threads: int) -> list:
    """Verdicts in question order; an LLM judge grades `threads` answers at once."""

    def grade(pair: tuple[dict, dict]):
        q, a = pair
        return judge.grade(q["question"], q["reference"], a["text"], windows.get(q["window"]), q["options"])

    pairs = list(zip(questions, answers, strict=True))
    bar = tqdm(total=len(pairs), desc="judge", unit="answer")
    with ThreadPoolExecutor(max_workers=threads) as pool:  # map keeps the input order
        verdicts = []
        for verdict in pool.map(grade, pairs):
            verdicts.append(verdict)
            bar.update(1)
    bar.close()
    return verdicts


def student_answers(
    model,
    tokenizer: Tokenizer,
    prompts: list[list[dict]],
    params: EvaluateParams,
    max_new_tokens: int,
    desc: str = "answer",
) -> list[dict]:
    """The model's answer to each prompt: text, length in tokens, whether it stopped at <|im_end|>.
    Prompt i samples with seed + i, so an answer does not depend on the ones before it."""
    rows = []
    for i, messages in enumerate(tqdm(prompts, desc=desc, unit="answer")):
        try:
            text, stopped = answer(
                model,
                tokenizer,
                messages,
                max_new_tokens=max_new_tokens,
                temperature=params.temperature,
                seed=params.seed + i,
            )
        except ValueError as exc:  # a prompt longer than the model's context: an empty, unstopped answer
            log.warning("prompt=%d not answered: %s", i, exc)
            text, stopped = "", False
        rows.append({"text": text, "stopped": bool(stopped), "answer_tokens": len(tokenizer.encode(text))})
    return rows


def validation_metrics(model, packed: Path, params: EvaluateParams, device: torch.device) -> dict:
    """Token-weighted validation loss over the packed val contexts and its perplexity."""
    arrays = load_packed(packed, "val")
    contexts = 0 if arrays is None else len(arrays["tokens"])
    batches = params.max_val_batches or math.ceil(contexts / params.val_batch_size)
    loss = validation_loss(model, arrays, params.val_batch_size, device, batches)
    model.eval()  # validation_loss leaves the model in train mode
    if loss is None:
        return {"val_loss": None, "val_ppl": None, "val_contexts": contexts}
    return {"val_loss": round(loss, 6), "val_ppl": round(math.exp(min(loss, 50.0)), 4), "val_contexts": contexts}


def load_everything(args: argparse.Namespace):
    """(params, tokenizer, val questions, window id -> text, model, device); raises on bad inputs."""
    params = load_section(args.params, "evaluate", EvaluateParams)
    check_params(params, f"{args.params}:evaluate")
    if not args.model.exists():
        raise FileNotFoundError(f"{args.model}: model not found (run the train stage, or pass an exported folder)")
    for path in (args.tokens / "meta.json", args.records, args.windows):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found (run the pipeline up to tokenize first)")
    tokenizer = Tokenizer.load(args.tokenizer)
    meta = json.loads((args.tokens / "meta.json").read_text(encoding="utf-8"))
    train_articles = set(meta["splits"]["train"]["article_titles"])
    val_index = list(read_jsonl(args.tokens / "val.records.jsonl"))
    questions = val_questions(read_jsonl(args.records), val_index, train_articles)
    wanted = {q["window"] for q in questions}
    windows = {w["id"]: w["text"] for w in read_jsonl(args.windows) if w.get("id") in wanted}
    device = pick_device(params.device)
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
    parser.add_argument("--tokens", type=Path, required=True, help="tokenize output (val split index)")
    parser.add_argument("--records", type=Path, required=True, help="the records the tokenize stage read")
    parser.add_argument("--windows", type=Path, required=True, help="source windows, shown to an llm judge")
    parser.add_argument("--packed", type=Path, required=True, help="pack output (val contexts for the loss)")
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--samples", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params, tokenizer, questions, windows, model, device = load_everything(args)
        judge, threads = build_judge(params)  # before the model runs: a bad judge config fails in a second
    except (ValueError, OSError, KeyError) as exc:  # ParamsError, ModelLoadError, DataError... are ValueErrors
        log.error("%s", exc.args[0] if isinstance(exc, KeyError) else exc)
        return 2
    asked = sample_questions(questions, params.max_questions, params.seed)
    judge_name = judge.backend.name if isinstance(judge, LLMJudge) else "heuristic"
    log.info("val_questions=%d asked=%d judge=%s device=%s", len(questions), len(asked), judge_name, device)
    opens = [[{"role": "user", "content": p}] for p in params.open_prompts]
    try:
        answers = student_answers(model, tokenizer, [q["prompt"] for q in asked], params, params.max_new_tokens)
        open_answers = student_answers(model, tokenizer, opens, params, params.open_max_new_tokens, "historian")
        loss = validation_metrics(model, args.packed, params, device)
        verdicts = grade_all(judge, asked, answers, windows, threads)
    except DataError as exc:
        log.error("%s", exc)
        return 2
    finally:
        if isinstance(judge, LLMJudge):
            with contextlib.suppress(Exception):  # closing is best effort; the run's outcome is decided
                judge.backend.close()
    metrics = {
        **summarise_eval(asked, answers, verdicts),
        **loss,
        "historian": answer_stats(open_answers),
        "judge": judge_name,
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
