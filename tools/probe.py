"""Probe the student: ask it held-out questions, grade the answers, report its weak spots and
write the priorities that steer the next generation round.

The questions are the generator's records held out of training for each trained window (the
encode stage's `recall` split, data/tokens/recall.records.jsonl; `--split val` asks the
held-out articles instead), at most --max-questions of them (stratified by type, as evaluate
samples). The student answers in this process (--model/--tokenizer), or through an
OpenAI-compatible server when --server gives its base URL (python -m tools.serve: the same
answers for the same seed). The judge and the answer settings are evaluate's params
(evaluate.judge heuristic offline, llm when configured; max_new_tokens, temperature, seed).

Outputs:
  metrics/weak_spots.json  asked/failed/fail_rate overall and per article, window and prompt
                           type (worst first) and the worst failed examples with their answers
  metrics/priorities.json  per-window and per-type weights (evaluation/probe.py); point
                           `generate.priorities` at it and the windows and types the student
                           fails are generated first:
                           dvc exp run -S generate.priorities=metrics/priorities.json

Example:
  python -m tools.probe --model data/model/model.pt --tokenizer data/tokenizer
  python -m tools.probe --server http://127.0.0.1:8000/v1 --server-model ww2lm --tokenizer data/tokenizer
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import openai
import torch

from common.cli import setup_logging
from common.files import read_jsonl, write_json
from common.params import load_section
from common.progress import progress
from evaluation.evaluate import EvaluateParams, build_judge, check_params, grade_all, student_answers
from evaluation.probe import DEFAULT_BOOST, priorities, weak_spots
from evaluation.questions import sample_questions
from evaluation.splits import index_questions, wanted_records
from tools.chat import load_chat_model

log = logging.getLogger("probe")


def load_questions(args: argparse.Namespace, params: EvaluateParams) -> tuple[list[dict], dict[str, str]]:
    """(the questions to ask, window id -> window text for the judge); FileNotFoundError/ValueError."""
    index_path = args.tokens / f"{args.split}.records.jsonl"
    for path in (index_path, args.records, args.windows):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found (run the pipeline up to encode first)")
    index = list(read_jsonl(index_path))
    questions = index_questions(wanted_records(read_jsonl(args.records), [index]), index, args.split)
    questions = sample_questions(questions, args.max_questions, params.seed)
    if not questions:
        raise ValueError(f"{index_path}: no graded questions in the {args.split} split")
    wanted = {q["window"] for q in questions}
    windows = {w["id"]: w["text"] for w in read_jsonl(args.windows) if w.get("id") in wanted}
    return questions, windows


def server_answers(
    base_url: str, model: str, prompts: list[list[dict]], params: EvaluateParams, key: str
) -> list[dict]:
    """The answers of the student behind an OpenAI-compatible server, seeded as evaluate seeds them."""
    client = openai.OpenAI(base_url=base_url, api_key=key or "none", max_retries=2, timeout=600)
    rows = []
    for i, messages in enumerate(progress(prompts, desc="answer", unit="answer")):
        try:
            reply = client.chat.completions.create(
                model=model,
                messages=messages,
                max_tokens=params.max_new_tokens,
                temperature=params.temperature,
                seed=params.seed + i,
            )
        except openai.BadRequestError as exc:  # a prompt longer than the context: unanswered, as evaluate does
            log.warning("prompt=%d not answered: %s", i, exc)
            rows.append({"text": "", "stopped": False})
            continue
        choice = reply.choices[0]
        rows.append({"text": choice.message.content or "", "stopped": choice.finish_reason == "stop"})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="its evaluate section is used")
    parser.add_argument("--model", type=Path, default=Path("data/model/model.pt"), help="the student, in process")
    parser.add_argument("--tokenizer", type=Path, default=None, help="default data/tokenizer")
    parser.add_argument("--server", default=None, help="ask a student behind this OpenAI base URL instead")
    parser.add_argument("--server-model", default="ww2lm", help="the model name the server serves")
    parser.add_argument("--api-key", default="", help="the server's API key, if it wants one")
    parser.add_argument("--tokens", type=Path, default=Path("data/tokens"), help="encode output (split indexes)")
    parser.add_argument("--records", type=Path, default=Path("data/shuffled.jsonl"), help="what encode read")
    parser.add_argument("--windows", type=Path, default=Path("data/windows.jsonl"))
    parser.add_argument("--split", choices=("recall", "val", "train"), default="recall")
    parser.add_argument("--max-questions", type=int, default=0, help="0 = every question of the split")
    parser.add_argument("--worst", type=int, default=10, help="worst examples kept in the report")
    parser.add_argument("--boost", type=float, default=DEFAULT_BOOST, help="priority = 1 + boost x fail rate")
    parser.add_argument("--out", type=Path, default=Path("metrics/weak_spots.json"))
    parser.add_argument("--priorities", type=Path, default=Path("metrics/priorities.json"))
    args = parser.parse_args(argv)
    if args.max_questions < 0 or args.worst < 0 or args.boost < 0:
        parser.error("need --max-questions >= 0, --worst >= 0 and --boost >= 0")
    setup_logging()
    try:
        params = load_section(args.params, "evaluate", EvaluateParams)
        check_params(params, f"{args.params}:evaluate")
        questions, windows = load_questions(args, params)
        judge = build_judge(params)
        prompts = [q["prompt"] for q in questions]
        if args.server:
            answers = server_answers(args.server, args.server_model, prompts, params, args.api_key)
        else:
            model, tokenizer = load_chat_model(args.model, args.tokenizer, "cpu")
            with torch.inference_mode():
                answers = student_answers(model, tokenizer, prompts, params, params.max_new_tokens)
    except (ValueError, OSError, openai.APIError) as exc:  # ParamsError, ModelLoadError, TokenizerError are ValueErrors
        log.error("%s", exc)
        return 2
    verdicts = grade_all(judge, questions, answers, windows)
    report = weak_spots(questions, answers, verdicts, args.worst)
    write_json(args.out, report)
    write_json(args.priorities, priorities(report, args.boost))
    worst = report["by_article"][0]
    log.info("asked=%d fail_rate=%.3f worst_article=%r (%.2f) out=%s priorities=%s", report["asked"],
             report["fail_rate"], worst["name"], worst["fail_rate"], args.out, args.priorities)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
