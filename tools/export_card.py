"""MODEL_CARD.md for an exported model (tools/export.py): what it is, how it did, where it came from.

A short card in the spirit of "Model Cards for Model Reporting" (Mitchell et al. 2019): model
details, intended use, evaluation, provenance and limitations, from the files the export
writes beside it, so the card never says something the archive does not hold.
"""

from __future__ import annotations


def _fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _evaluation(metrics: dict | None) -> list[str]:
    if metrics is None:
        return ["Not evaluated: export with `--metrics metrics/eval.json` after `dvc repro evaluate`.", ""]
    questions = metrics.get("questions", {})
    bias = metrics.get("positional_bias", {})
    historian = metrics.get("historian", {})
    lines = [
        f"Judge: `{metrics.get('judge', 'n/a')}`, on {questions.get('total', 'n/a')} held-out questions from "
        "articles the model never trained on (`eval.json` has everything).",
        "",
        "| metric | value |",
        "|---|---|",
        f"| pass rate | {_fmt(metrics.get('pass_rate'))} |",
        f"| pass / fail / unparsed / error | {questions.get('pass', 0)} / {questions.get('fail', 0)} / "
        f"{questions.get('unparsed', 0)} / {questions.get('error', 0)} |",
        f"| validation loss (perplexity) | {_fmt(metrics.get('val_loss'))} ({_fmt(metrics.get('val_ppl'), 1)}) |",
        f"| contrastive accuracy, correct option first / second (gap) | {_fmt(bias.get('first_accuracy'))} / "
        f"{_fmt(bias.get('second_accuracy'))} ({_fmt(bias.get('gap'))}) |",
        f"| open prompts: mean answer tokens, share stopped | {_fmt(historian.get('mean_answer_tokens'), 1)}, "
        f"{_fmt(historian.get('stopped_share'))} |",
        "",
    ]
    per_type = metrics.get("per_type") or {}
    if per_type:
        lines += ["| prompt type | questions | pass rate |", "|---|---|---|"]
        lines += [f"| {t} | {c.get('total')} | {_fmt(c.get('pass_rate'))} |" for t, c in sorted(per_type.items())]
        lines.append("")
    return lines


def model_card(
    name: str, config: dict, num_params: int, provenance: dict, metrics: dict | None, vocab_size: int
) -> str:
    git = provenance.get("git", {})
    dirty = {True: " (uncommitted changes)", False: "", None: ""}[git.get("dirty")]
    dvc = provenance.get("dvc", {})
    lines = [
        f"# {name}",
        "",
        "A GPT-2-style language model of World War II history, trained from scratch by the ww2lm "
        "pipeline on Wikipedia articles turned into question/answer chats (ChatML).",
        "",
        "## Model",
        "",
        "| | |",
        "|---|---|",
        f"| variant | {provenance.get('variant') or 'n/a'} |",
        f"| parameters | {num_params:,} ({num_params / 1e6:.2f}M, untied output head) |",
        f"| layers x width x heads | {config['n_layer']} x {config['n_embd']} x {config['n_head']} |",
        f"| context | {config['context_length']} tokens |",
        f"| vocabulary | {vocab_size} (SentencePiece, `tokenizer/`) |",
        f"| training steps | {_fmt(provenance.get('step'))} |",
        "",
        "## Use",
        "",
        "```python",
        "from model.inference import load_model, answer",
        "from dataset.tokenizer import Tokenizer",
        f'model, config = load_model("models/{name}")',
        f'tok = Tokenizer.load("models/{name}/tokenizer")',
        'text, stopped = answer(model, tok, [{"role": "user", "content": "Tell me about the Eastern Front."}])',
        "```",
        "",
        f"or `python -m stages.evaluate --model models/{name} ...` to grade it again.",
        "",
        "## Evaluation",
        "",
        *_evaluation(metrics),
        "## Provenance",
        "",
        f"- git commit: `{git.get('commit', 'unknown')}`{dirty}",
        f"- DVC: `{dvc.get('model_path', 'n/a')}` md5 `{dvc.get('model_md5', 'n/a')}` in dvc.lock"
        + (
            " (eval.json graded a different model)"
            if dvc.get("evaluate_dep_md5") not in (None, dvc.get("model_md5"))
            else ""
        ),
        f"- weights sha256: `{provenance.get('weights_sha256')}`",
        f"- exported: {provenance.get('created')} from `{provenance.get('source_model')}`",
        "- exact parameters: `params.yaml`; everything above: `provenance.json`",
        "",
        "## Limitations",
        "",
        "A small model trained on a small corpus: it states wrong names, dates and numbers with "
        "confidence and knows nothing outside its articles. Not a source of historical fact; check "
        "anything it says against the articles it learned from.",
        "",
    ]
    return "\n".join(lines)
