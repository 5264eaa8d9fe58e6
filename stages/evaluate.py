"""evaluate: what the model knows: it answers questions of each split, a judge grades them PASS or FAIL.

The questions are the qa and contrastive records of each split (evaluation/questions.py says why
qpt records are not graded), at most `max_questions` per split drawn stratified by prompt type. The model answers each
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

Splits (evaluation/splits.py), side by side, each with baselines graded by the same judge
(always "True", the first option, the question echoed) and chance: recall (the headline:
held-out questions whose facts training taught), verbatim (trained questions), unseen (val
articles: the control), exam and exam_unseen (`--exams`: log-likelihood acc / acc_norm and
generated answers; evaluation/exam.py gives the file format).

Inputs:  a model (data/model/model.pt, a checkpoint or an exported folder), data/tokenizer,
         data/tokens ({val,recall,train}.records.jsonl, meta.json), data/shuffled.jsonl,
         data/windows.jsonl, data/packed, data/exams
Outputs: metrics/eval.json (for `dvc metrics diff`), metrics/eval_samples.jsonl (to read),
         metrics/eval_scores.json (--scores: the key scores beside chance, for `dvc plots`)

Example:
  python -m stages.evaluate --params params.yaml --model data/model/model.pt \
      --tokenizer data/tokenizer --tokens data/tokens --records data/shuffled.jsonl \
      --windows data/windows.jsonl --packed data/packed --exams data/exams \
      --metrics metrics/eval.json --samples metrics/eval_samples.jsonl \
      --scores metrics/eval_scores.json
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
from dataset.packed_files import DataError, packed_width
from dataset.tokenizer import Tokenizer
from evaluation.evaluate import EvaluateParams, build_judge, check_params
from evaluation.exam import exam_files, read_exam_items, split_exam
from evaluation.historian import article_texts
from evaluation.key_scores import key_scores
from evaluation.report import measure
from evaluation.splits import choose_splits, wanted_records
from model.gpt import GPT
from model.inference import load_model

log = logging.getLogger("evaluate")
SPLIT_INDEXES = ("val", "recall", "train")  # data/tokens/<split>.records.jsonl


def read_index(tokens: Path, split: str) -> list[dict] | None:
    path = tokens / f"{split}.records.jsonl"
    if not path.is_file():
        log.warning("split=%s skipped: %s not found", {"val": "unseen", "train": "verbatim"}.get(split, split), path)
        return None
    return list(read_jsonl(path))


def check_something_to_grade(splits: dict[str, list], exams: dict[str, list], tokens: Path) -> None:
    """Say so when a split has no questions (its pass_rate is null, not 0.0); refuse to run
    when nothing at all would be graded instead of reporting a score on 0 questions."""
    for name, questions in splits.items():
        if not questions:
            why = " (encode.val_fraction 0 holds out no article)" if name == "unseen" else ""
            log.warning("split=%s has no questions%s: its pass_rate is null", name, why)
    if not any(splits.values()) and not any(exams.values()):
        raise ValueError(
            f"{tokens}: no question to grade in any split and no exam item "
            "(encode.val_fraction 0 and no recall split?): nothing to evaluate"
        )


def load_everything(args: argparse.Namespace) -> tuple[EvaluateParams, Tokenizer, dict, dict, GPT, torch.device]:
    """(params, tokenizer, inputs {splits, exams, windows, texts, val_questions}, model, device);
    raises on bad inputs."""
    params = load_section(args.params, "evaluate", EvaluateParams)
    check_params(params, f"{args.params}:evaluate")
    if not args.model.exists():
        raise FileNotFoundError(f"{args.model}: model not found (run the train stage, or pass an exported folder)")
    for path in (args.tokens / "meta.json", args.tokens / "val.records.jsonl", args.records, args.windows):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found (run the pipeline up to encode first)")
    if args.exams is not None and not args.exams.is_dir():
        raise FileNotFoundError(f"{args.exams}: exams folder not found")
    tokenizer = Tokenizer.load(args.tokenizer)
    meta = json.loads((args.tokens / "meta.json").read_text(encoding="utf-8"))
    train_articles = set(meta["splits"]["train"]["article_titles"])
    indexes = {split: read_index(args.tokens, split) for split in SPLIT_INDEXES}
    by_id = wanted_records(read_jsonl(args.records), [i for i in indexes.values() if i])
    splits = choose_splits(by_id, indexes, train_articles, params.max_questions, params.seed)
    files = exam_files(args.exams) if args.exams else []
    items = read_exam_items((f.name, read_jsonl(f)) for f in files)
    exams = split_exam(items, set(meta["splits"]["val"]["article_titles"]))
    check_something_to_grade(splits, exams, args.tokens)
    wanted = {q["window"] for qs in splits.values() for q in qs}
    articles = {p["article"] for p in params.open_prompts}
    windows, window_rows = {}, []
    for w in read_jsonl(args.windows):
        if w.get("id") in wanted:
            windows[w["id"]] = w["text"]
        if w.get("article") in articles:
            window_rows.append(w)
    inputs = {"splits": splits, "exams": exams, "windows": windows, "texts": article_texts(window_rows, articles)}
    device = pick_device(params.device, "evaluate.device")
    model, config = load_model(args.model, device=device)
    if config.vocab_size != tokenizer.vocab_size:
        raise ValueError(
            f"{args.model}: vocab_size {config.vocab_size} != the tokenizer's {tokenizer.vocab_size} "
            f"({args.tokenizer}): not the tokenizer this model was trained with"
        )
    width = packed_width(args.packed)  # checked now: the val loss comes after every answer is generated
    if width > config.context_length:
        raise ValueError(
            f"{args.packed}: packed {width} tokens wide (pack.context_length), more than the model's "
            f"context_length {config.context_length} ({args.model}): pack for this model, or pass its own model"
        )
    return params, tokenizer, inputs, model, device


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
    parser.add_argument("--tokens", type=Path, required=True, help="encode output (split indexes)")
    parser.add_argument("--records", type=Path, required=True, help="the records the encode stage read")
    parser.add_argument("--windows", type=Path, required=True, help="source windows: llm judge, historian")
    parser.add_argument("--packed", type=Path, required=True, help="pack output (val contexts for the loss)")
    parser.add_argument("--exams", type=Path, default=None, help="a folder of exam *.jsonl (evaluation/exam.py)")
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--samples", type=Path, required=True)
    parser.add_argument("--scores", type=Path, default=None, help="write the key scores as plot rows here")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params, tokenizer, inputs, model, device = load_everything(args)
        judge = build_judge(params)  # before the model runs: a bad judge config fails in a second
    except (ValueError, OSError, KeyError) as exc:  # ParamsError, ModelLoadError, ExamError... are ValueErrors
        log.error("%s", exc.args[0] if isinstance(exc, KeyError) else exc)
        return 2
    asked = {name: len(qs) for name, qs in inputs["splits"].items()}
    log.info("asked=%s exam=%d judge=%s device=%s", asked, sum(map(len, inputs["exams"].values())), judge.name, device)
    try:
        metrics, rows = measure(model, tokenizer, judge, params, inputs, args.packed, device)
    except DataError as exc:
        log.error("%s", exc)
        return 2
    finally:
        with contextlib.suppress(Exception):  # closing is best effort; the run's outcome is decided
            judge.close()
    metrics["judge"] = judge.name
    write_jsonl(args.samples, rows)
    write_json(args.metrics, metrics)
    if args.scores:
        write_json(args.scores, key_scores(metrics))
    for name, split in metrics["splits"].items():
        score = split.get("pass_rate", split.get("ll_acc"))
        log.info("split=%s n=%d score=%s baselines=%s", name, split["n"], score, split["baselines"])
    log.info("val_loss=%s contrastive_gap=%s historian_grounded=%s", metrics["val_loss"],
             metrics["contrastive"]["generated"]["gap"], metrics["historian"]["grounded_share"])  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
