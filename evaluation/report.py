"""The evaluate stage's measurements, split by split, with baselines beside each score.

`evaluate_split` has the model answer a split's questions and the judge grade them, then grades
the baselines (evaluation/splits.py) with the same judge. `evaluate_exam` scores an exam by
option log-likelihood and by generated answers (evaluation/exam.py). `contrastive_metrics`
compares the generated and the log-likelihood picks on two-option contrastive records, with the
correct option first vs second. metrics/eval.json's layout is README.md's "evaluate".
"""

from __future__ import annotations

from collections.abc import Sequence

from dataset.chatml import ChatEncoder
from dataset.tokenizer import Tokenizer
from evaluation.evaluate import EvaluateParams, grade_all, student_answers, validation_metrics
from evaluation.exam import exam_questions
from evaluation.historian import historian_metrics
from evaluation.judge import Verdict
from evaluation.judges import Judge
from evaluation.loglik import ll_choice, option_logprobs
from evaluation.questions import answer_stats, open_rows, positional_bias, sample_questions, sample_rows, summarise_eval
from evaluation.splits import BASELINES, baseline_answer, chance
from model.gpt import GPT


def _rate(hits: Sequence[bool]) -> float | None:
    return round(sum(hits) / len(hits), 6) if hits else None


def baselines(judge: Judge, questions: Sequence[dict], windows: dict[str, str]) -> dict:
    """{baseline: {pass_rate, n}} over the questions it applies to, and `chance`."""
    out = {}
    for name in BASELINES:
        asked = [(q, a) for q in questions if (a := baseline_answer(q, name)) is not None]
        answers = [{"text": a} for _, a in asked]
        verdicts = grade_all(judge, [q for q, _ in asked], answers, windows) if asked else []
        out[name] = {"pass_rate": _rate([v.verdict == "PASS" for v in verdicts]), "n": len(asked)}
    return out | {"chance": chance(questions)}


def answer_and_grade(
    model: GPT, tokenizer: Tokenizer, judge: Judge, params: EvaluateParams, questions: list[dict], windows, desc: str
) -> tuple[list[dict], list[Verdict]]:
    answers = student_answers(model, tokenizer, [q["prompt"] for q in questions], params, params.max_new_tokens, desc)
    return answers, grade_all(judge, questions, answers, windows)


def evaluate_split(model, tokenizer, judge, params, name: str, questions: list[dict], windows) -> tuple[dict, list]:
    """(metrics, sample rows) of one split."""
    answers, verdicts = answer_and_grade(model, tokenizer, judge, params, questions, windows, name)
    metrics = {"n": len(questions), **summarise_eval(questions, answers, verdicts)}
    metrics["baselines"] = baselines(judge, questions, windows)
    rows = [{"split": name, **row} for row in sample_rows(questions, answers, verdicts)]
    return metrics, rows


def two_option(questions: Sequence[dict]) -> list[dict]:
    return [q for q in questions if q["kind"] == "contrastive" and q["options"] and len(q["options"]) == 2]


def contrastive_metrics(model: GPT, encoder: ChatEncoder, split: str, questions: list[dict], rows: list[dict]) -> dict:
    """Generated (the judge's verdicts, from `rows`) and log-likelihood accuracy on two-option
    contrastive records, and each one's positional gap (correct first - correct second)."""
    pairs = [(q, r) for q, r in zip(questions, rows, strict=True) if two_option([q]) and q["correct"] in (0, 1)]
    ll_verdicts = []
    for q, row in pairs:
        picked = ll_choice(option_logprobs(model, encoder, q["prompt"], q["options"]), q["options"])
        row["ll_pick"] = picked["pick"]
        ll_verdicts.append(Verdict("PASS" if picked["pick"] == q["correct"] else "FAIL", "ll"))
    gen_verdicts = [Verdict(r["verdict"], "") for _, r in pairs]
    asked = [q for q, _ in pairs]

    def side(verdicts):
        bias = positional_bias(asked, verdicts)
        return {"acc": _rate([v.verdict == "PASS" for v in verdicts]), "n": len(verdicts)} | bias

    return {"split": split, "generated": side(gen_verdicts), "ll": side(ll_verdicts)}


def evaluate_exam(model, tokenizer, judge, params, name: str, items: list[dict], windows) -> tuple[dict, list]:
    """(metrics, sample rows) of exam items: LL acc / acc_norm, generated with and without the
    options shown, the baselines on the with-options rendering."""
    items = sample_questions([dict(i, type="exam", group=i["id"]) for i in items], params.max_questions, params.seed)
    questions = [q for item in items for q in exam_questions(item)]
    answers, verdicts = answer_and_grade(model, tokenizer, judge, params, questions, windows, name)
    rows = [{"split": name, **row} for row in sample_rows(questions, answers, verdicts)]
    encoder = ChatEncoder(tokenizer)
    ll, ll_norm = [], []
    for q, row in zip(questions, rows, strict=True):
        if q["variant"] == "no_options":  # the options are the replies scored, the question alone the prompt
            picked = ll_choice(option_logprobs(model, encoder, q["prompt"], q["options"]), q["options"])
            ll.append(picked["pick"] == q["correct"])
            ll_norm.append(picked["pick_norm"] == q["correct"])
            row |= {"ll_pick": picked["pick"], "ll_pick_norm": picked["pick_norm"], "ll_logprobs": picked["logprobs"]}
    passed = {}
    for q, v in zip(questions, verdicts, strict=True):
        passed.setdefault(q["variant"], []).append(v.verdict == "PASS")
    with_options = [q for q in questions if q["variant"] == "options"]
    metrics = {
        "n": len(items),
        "ll_acc": _rate(ll),
        "ll_acc_norm": _rate(ll_norm),
        "chance": chance(with_options),
        "generated_acc": _rate(passed.get("options", [])),
        "generated_acc_no_options": _rate(passed.get("no_options", [])),
        "open_acc": _rate(passed.get("open", [])),
        "answers": summarise_eval(questions, answers, verdicts)["answers"],
        "baselines": baselines(judge, with_options, windows),
    }
    return metrics, rows


def measure(model, tokenizer, judge, params, inputs, packed, device) -> tuple[dict, list[dict]]:
    """(metrics, sample rows): every split, the exams, contrastive picks, historian, val loss."""
    metrics, rows, graded = {"splits": {}}, [], []
    for name, questions in inputs["splits"].items():
        split_metrics, split_rows = evaluate_split(model, tokenizer, judge, params, name, questions, inputs["windows"])
        metrics["splits"][name], rows = split_metrics, rows + split_rows
        graded += split_rows
    for name, items in inputs["exams"].items():
        if items:
            metrics["splits"][name], exam_rows = evaluate_exam(
                model, tokenizer, judge, params, name, items, inputs["windows"]
            )
            rows += exam_rows
            graded += exam_rows
    source = "recall" if "recall" in inputs["splits"] else "unseen"
    split_rows = [r for r in rows if r["split"] == source]
    metrics["contrastive"] = contrastive_metrics(
        model, ChatEncoder(tokenizer), source, inputs["splits"][source], split_rows
    )
    metrics["answers"] = answer_stats(graded)
    prompts = [[{"role": "user", "content": p["prompt"]}] for p in params.open_prompts]
    open_answers = student_answers(model, tokenizer, prompts, params, params.open_max_new_tokens, "historian")
    metrics["historian"], grounded = historian_metrics(params.open_prompts, open_answers, inputs["texts"])
    opens = open_rows([p["prompt"] for p in params.open_prompts], open_answers)
    for row, prompt, share in zip(opens, params.open_prompts, grounded, strict=True):
        row |= {"split": "historian", "article": prompt["article"], "grounded_share": share}
    metrics |= validation_metrics(model, packed, params, device)
    return metrics, rows + opens
