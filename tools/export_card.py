"""MODEL_CARD.md for an exported model (tools/export.py): what it is, how it did, where it came from.

A short card in the spirit of "Model Cards for Model Reporting" (Mitchell et al. 2019): model
details, intended use, evaluation, provenance and limitations, from the files the export
writes beside it, so the card never says something the archive does not hold.
"""

from __future__ import annotations

from evaluation.key_scores import key_scores
from tools.provenance import NO_ORIGIN, Origin, rebuild_commands


def _fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _evaluation(metrics: dict | None) -> list[str]:
    if metrics is None:
        return ["Not evaluated: export with `--metrics metrics/eval.json` after `dvc repro evaluate`.", ""]
    historian = metrics.get("historian", {})
    contrastive = (metrics.get("contrastive") or {}).get("generated") or {}
    lines = [
        f"Judge: `{metrics.get('judge', 'n/a')}`. Each score beside what answering at random gets "
        "(`eval.json` has every split, prompt type and baseline).",
        "",
        "| score | value | chance |",
        "|---|---|---|",
        *(f"| {row['score']} | {_fmt(row['value'])} | {_fmt(row['chance'])} |" for row in key_scores(metrics)),
        f"| validation loss (perplexity) | {_fmt(metrics.get('val_loss'))} ({_fmt(metrics.get('val_ppl'), 1)}) | |",
        f"| contrastive: correct option first / second (gap) | {_fmt(contrastive.get('first_accuracy'))} / "
        f"{_fmt(contrastive.get('second_accuracy'))} ({_fmt(contrastive.get('gap'))}) | 0.500 |",
        f"| open prompts: mean answer tokens, share stopped | {_fmt(historian.get('mean_answer_tokens'), 1)}, "
        f"{_fmt(historian.get('stopped_share'))} | |",
        "",
        "recall: held-out questions about trained facts; verbatim: trained questions; unseen: articles "
        "never trained on; exam / xunseen: the hand-written exam on trained / held-out articles "
        "(ll = option log-likelihood, norm = acc_norm, gen = generated answer).",
        "",
    ]
    return lines


def _origin(provenance: dict) -> list[str]:
    origin = provenance.get("origin") or {}
    kind = origin.get("kind")
    if kind == "experiment":
        made = (
            f"- made by DVC experiment `{origin.get('name')}` (`{origin.get('ref')}`, commit "
            f"`{origin.get('commit')}`, run on `{origin.get('baseline')}`)"
        )
    elif kind == "commit":
        made = f"- made by commit `{origin.get('commit')}`" + (f" ({origin['name']})" if origin.get("name") else "")
    else:
        made = "- made by no recorded run: no commit or experiment's dvc.lock holds this model"
    return [made, f"- exact parameters: `params.yaml`, from {provenance.get('params_source', 'n/a')}"]


def _rebuild(name: str, provenance: dict) -> list[str]:
    origin = Origin(**provenance["origin"]) if provenance.get("origin") else NO_ORIGIN
    return [
        "```sh",
        *rebuild_commands(origin, f"models/{name}", (provenance.get("dvc") or {}).get("model_path")),
        "```",
        "",
    ]


def model_card(
    name: str, config: dict, num_params: int, provenance: dict, metrics: dict | None, vocab_size: int
) -> str:
    git = provenance.get("git", {})
    dirty = {True: " (uncommitted changes)", False: "", None: ""}[git.get("dirty")]
    dvc = provenance.get("dvc") or {}
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
        *_origin(provenance),
        f"- exported at git commit `{git.get('commit', 'unknown')}`{dirty}",
        f"- DVC: `{dvc.get('model_path', 'n/a')}` md5 `{dvc.get('model_md5', 'n/a')}` in dvc.lock"
        + (
            " (eval.json graded a different model)"
            if dvc.get("evaluate_dep_md5") not in (None, dvc.get("model_md5"))
            else ""
        )
        + (
            f"; the folder held `{dvc['workspace_md5']}` when exported"
            if dvc.get("workspace_md5") not in (None, dvc.get("model_md5"))
            else ""
        ),
        f"- weights sha256: `{provenance.get('weights_sha256')}`",
        f"- exported: {provenance.get('created')} from `{provenance.get('source_model')}`"
        + (f"; DVC artifact `{provenance['artifact']}`" if provenance.get("artifact") else ""),
        "- everything above: `provenance.json`",
        "",
        "## Rebuild",
        "",
        *_rebuild(name, provenance),
        "## Limitations",
        "",
        "A small model trained on a small corpus: it states wrong names, dates and numbers with "
        "confidence and knows nothing outside its articles. Not a source of historical fact; check "
        "anything it says against the articles it learned from.",
        "",
    ]
    return "\n".join(lines)
