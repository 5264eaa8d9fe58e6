"""The evaluate stage's logic: params, the judge, the student's answers, the validation loss.

The stage entry point is stages/evaluate.py; README.md, "evaluate", describes what is
measured and why. Questions and metrics are evaluation/questions.py, judges evaluation/judges.py.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from common.devices import DEVICES
from common.params import ParamsError
from common.progress import progress
from dataset.packed_files import load_packed
from dataset.tokenizer import Tokenizer
from evaluation.judge import HeuristicJudge, Verdict
from evaluation.judge_llm import LLMJudge
from evaluation.judges import Judge
from llm.factory import build_backend
from llm.params import OpenAIParams, TransformersParams
from model.gpt import GPT
from model.inference import answer
from training.validation import validation_loss

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
    open_prompts: tuple[dict, ...]  # the historian check: {prompt, article} (groundedness against the article)
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
        ("device", params.device in DEVICES, "must be auto, cpu or cuda"),
        ("val_batch_size", params.val_batch_size >= 1, "must be >= 1"),
        ("max_val_batches", params.max_val_batches >= 0, "must be >= 0 (0 = all)"),
    ]
    prompts_ok = all(
        isinstance(p, dict) and set(p) == {"prompt", "article"} and all(isinstance(v, str) and v for v in p.values())
        for p in params.open_prompts
    )
    problems.append(("open_prompts", prompts_ok, "must be a list of {prompt, article} entries"))
    for key, ok, why in problems:
        if not ok:
            raise ParamsError(f"{where}.{key}: {why}, got {getattr(params, key)!r}")


def build_judge(params: EvaluateParams) -> Judge:
    """The heuristic judge, or the LLM judge on the backend llm/factory.py builds."""
    if params.judge == "heuristic":
        return HeuristicJudge(**dataclasses.asdict(params.heuristic))
    backend = build_backend(
        params.judge_backend, params, key="evaluate.judge_backend", concurrency=params.judge_concurrency
    )
    # TransformersChat batches whatever is queued: keep a whole batch in flight.
    threads = params.transformers.batch_size if params.judge_backend == "transformers" else params.judge_concurrency
    return LLMJudge(backend, max_in_flight=threads)


def grade_all(judge: Judge, questions: list[dict], answers: list[dict], windows: dict[str, str]) -> list[Verdict]:
    """Verdicts in question order, `judge.max_in_flight` answers graded at once."""

    def grade(pair: tuple[dict, dict]):
        q, a = pair
        return judge.grade(q["question"], q["reference"], a["text"], windows.get(q["window"]), q["options"])

    pairs = list(zip(questions, answers, strict=True))
    bar = progress(total=len(pairs), desc="judge", unit="answer")
    with ThreadPoolExecutor(max_workers=judge.max_in_flight) as pool:  # map keeps the input order
        verdicts = []
        for verdict in pool.map(grade, pairs):
            verdicts.append(verdict)
            bar.update(1)
    bar.close()
    return verdicts


def student_answers(
    model: GPT,
    tokenizer: Tokenizer,
    prompts: list[list[dict]],
    params: EvaluateParams,
    max_new_tokens: int,
    desc: str = "answer",
) -> list[dict]:
    """The model's answer to each prompt: text, length in tokens, whether it stopped at <|im_end|>.
    Prompt i samples with seed + i, so an answer does not depend on the ones before it."""
    rows = []
    for i, messages in enumerate(progress(prompts, desc=desc, unit="answer")):
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


def validation_metrics(model: GPT, packed: Path, params: EvaluateParams, device: torch.device) -> dict:
    """Token-weighted validation loss over the packed val contexts and its perplexity."""
    arrays = load_packed(packed, "val")
    contexts = 0 if arrays is None else len(arrays["tokens"])
    batches = params.max_val_batches or math.ceil(contexts / params.val_batch_size)
    loss = validation_loss(model, arrays, params.val_batch_size, device, batches)
    model.eval()  # validation_loss leaves the model in train mode
    if loss is None:
        return {"val_loss": None, "val_ppl": None, "val_contexts": contexts}
    return {"val_loss": round(loss, 6), "val_ppl": round(math.exp(min(loss, 50.0)), 4), "val_contexts": contexts}
