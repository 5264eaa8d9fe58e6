"""export: snapshot a trained model into a named, self-contained model archive folder.

`models/<name>/` holds everything needed to run and to trace the model:
  config.json        GPTConfig fields (what model/inference.py load_model reads) + variant, step
  model.safetensors  the weights (safetensors: no pickle, so loading runs no code)
  tokenizer/         spm.model, spm.vocab, tokenizer.json of the tokenizer it was trained with
  params.yaml        the exact params of the run that made it: the params.yaml of the
                     experiment or commit whose dvc.lock records this model (tools/provenance.py)
  provenance.json    that experiment (name, ref, baseline) or commit and its params, git HEAD
                     and dirty flag, the DVC hashes of the model output (recorded and actual),
                     the DVC artifact, the source file, the weights' sha256, the creation time
  eval.json          the evaluate stage's metrics (when --metrics is given)
  MODEL_CARD.md      a short human summary (tools/export_card.py)
With `--format transformers` config.json and model.safetensors are transformers' GPT-2 layout
instead, beside tokenizer.json, tokenizer_config.json and generation_config.json, so
`AutoModelForCausalLM.from_pretrained` / `AutoTokenizer.from_pretrained` load the folder offline
and `apply_chat_template` + `generate` give our tokens (tools/export_hf.py). `--format gguf` adds
model.gguf (GPT-2 architecture, float32, SentencePiece vocabulary, ChatML template) for
llama.cpp and Ollama to the ww2lm files (tools/export_gguf.py).
The folder is built as `<name>.tmp/` and renamed, so a killed export leaves no half archive;
an existing name is never overwritten without --force. Chat and evaluate load the folder
directly (`--model models/<name>`).

Not a dvc.yaml stage: archives are named snapshots that accumulate (an "honest" name such as
ww2_185M_dirty says what a run was), while a DVC output is replaced by every repro. The
pipeline's model itself is the DVC artifact `ww2lm-model` (dvc.yaml `artifacts:`), versioned by
commit and experiment; models/ is git-ignored.

To export an experiment's model: `dvc exp apply NAME`, then export with `--experiment NAME`,
which refuses a workspace model that is not the one that experiment recorded.

Inputs:  data/model/model.pt (or a checkpoint, or another export), data/tokenizer, params.yaml,
         metrics/eval.json, dvc.lock and the git repository at --repo
Output:  models/<name>/

Example:
  python -m tools.export --model data/model/model.pt --tokenizer data/tokenizer \
      --params params.yaml --metrics metrics/eval.json --out models --name ww2_185M_dirty \
      --experiment ww2-185m-dirty
  python -m tools.export --model data/model/model.pt --tokenizer data/tokenizer --format transformers
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import re
import shutil
import sys
from pathlib import Path

import torch
import yaml

from common.cli import setup_logging
from common.files import atomic_dir, write_json
from dataset.tokenizer import MANIFEST_FILE, MODEL_FILE, VOCAB_FILE, Tokenizer, TokenizerError, read_manifest
from model.inference import CONFIG_FILE, NUMPY_GLOBALS, TRAINED_FILE, WEIGHTS_FILE, ModelLoadError, load_model
from tools.export_card import model_card
from tools.export_gguf import GGUF_FILE, write_gguf
from tools.export_hf import write_transformers
from tools.provenance import (
    NO_ORIGIN,
    GitError,
    Origin,
    artifact_for,
    committed_params,
    dvc_lock_hashes,
    dvc_md5,
    find_origin,
    git_revision,
    output_of,
)

log = logging.getLogger("export")

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
FORMATS = ("ww2lm", "transformers", "gguf")


class ExportError(ValueError):
    """An export that cannot be made; the message says why."""


def model_metadata(path: Path) -> dict:
    """variant and step of a model file, a checkpoint or an export (empty when unknown).
    mmap: the weights are not read, only the small fields beside them."""
    if path.is_dir() and (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file():
        raw = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        return {k: raw[k] for k in ("variant", "step") if k in raw}
    file = path / TRAINED_FILE if path.is_dir() else path
    try:
        with torch.serialization.safe_globals(NUMPY_GLOBALS):
            state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises RuntimeError/EOFError/UnpicklingError/... on torn files
        raise ModelLoadError(f"{file}: unreadable model file: {type(exc).__name__}: {exc}") from exc
    return {k: state[k] for k in ("variant", "step") if k in state} if isinstance(state, dict) else {}


def default_name(meta: dict) -> str:
    """`<variant>-step<step>`, e.g. tiny-step153."""
    return f"{meta.get('variant', 'model')}-step{meta.get('step', 'unknown')}"


def state_for_safetensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """safetensors refuses non-contiguous and memory-sharing tensors: each weight is its own
    contiguous CPU copy (the head is untied, so wte and lm_head are two tensors anyway)."""
    return {name: t.detach().to("cpu").contiguous().clone() for name, t in model.state_dict().items()}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def copy_tokenizer(source: Path, target: Path) -> None:
    """The tokenizer folder's files (or a bare .model file) into `target`."""
    target.mkdir()
    if source.is_dir():
        for name in (MODEL_FILE, VOCAB_FILE, MANIFEST_FILE):
            if (source / name).is_file():
                shutil.copyfile(source / name, target / name)
    else:
        shutil.copyfile(source, target / MODEL_FILE)


def export_model(args: argparse.Namespace) -> Path:
    """Build models/<name>/; returns its path. Raises ExportError, ModelLoadError, TokenizerError."""
    for path, what in ((args.model, "model"), (args.params, "params file")):
        if not path.exists():
            raise ExportError(f"{path}: {what} not found")
    if args.metrics is not None and not args.metrics.is_file():
        raise ExportError(f"{args.metrics}: eval metrics not found (run `dvc repro evaluate`, or leave out --metrics)")
    tokenizer = Tokenizer.load(args.tokenizer)  # a TokenizerError names a missing or bad file
    vocab_size = tokenizer.vocab_size
    if args.format == "transformers" and not args.tokenizer.is_dir():
        raise ExportError(f"{args.tokenizer}: --format transformers needs the tokenizer folder (its {MANIFEST_FILE})")
    meta = model_metadata(args.model)
    name = args.name or default_name(meta)
    if not NAME.match(name):
        raise ExportError(f"--name {name!r}: use letters, digits, '.', '_' and '-' (no path separators)")
    target = args.out / name
    if target.exists() and not args.force:
        raise ExportError(f"{target}: already exists; pick another --name or pass --force to replace it")
    model, config = load_model(args.model)
    if config.vocab_size != vocab_size:
        raise ExportError(
            f"{args.model}: vocab_size {config.vocab_size} != {vocab_size} of {args.tokenizer}: "
            "not the tokenizer this model was trained with"
        )
    eval_metrics = json.loads(args.metrics.read_text(encoding="utf-8")) if args.metrics else None
    traced, params_text = trace(args)  # before anything is written: a wrong --experiment fails here
    try:
        build_archive(args, target, name, meta, model, config, eval_metrics, traced, params_text)
    except BaseException:
        shutil.rmtree(target.with_name(target.name + ".tmp"), ignore_errors=True)  # no half archive left behind
        raise
    return target


def trace(args: argparse.Namespace) -> tuple[dict, str]:
    """The provenance fields that say which run made the model, and that run's params.yaml
    text. An exported folder keeps the origin its own export found."""
    archive = args.model / "provenance.json"
    if args.model.is_dir() and archive.is_file():
        earlier = json.loads(archive.read_text(encoding="utf-8"))
        params_text = (args.model / "params.yaml").read_text(encoding="utf-8")
        return {key: earlier.get(key) for key in ("origin", "params_source", "dvc", "artifact")}, params_text
    lock = args.repo / "dvc.lock"
    hashes = dvc_lock_hashes(lock, args.model, args.repo)
    found = output_of(args.model, args.repo, lock.read_text(encoding="utf-8")) if hashes else None
    origin: Origin = NO_ORIGIN
    if found is not None:
        hashes["workspace_md5"] = dvc_md5(args.repo / found[1])  # what the folder holds now
        origin = find_origin(args.repo, found[1], hashes["workspace_md5"], args.experiment)
    if args.experiment and origin.kind != "experiment":
        raise ExportError(
            f"{args.model}: not the model experiment {args.experiment!r} recorded (or no such experiment: "
            f"dvc exp list); run `dvc exp apply {args.experiment}` first, or leave out --experiment"
        )
    if origin.commit:
        params_text, source = (
            committed_params(args.repo, origin.commit),
            f"{origin.kind} {origin.name or origin.commit}",
        )
    else:
        log.warning("no commit or experiment recorded this model: params.yaml is copied from %s", args.params)
        params_text, source = args.params.read_text(encoding="utf-8"), f"file {args.params} (no recorded run)"
    fields = {
        "origin": origin.to_dict(),
        "params_source": source,
        "dvc": hashes,
        "artifact": artifact_for(args.repo, found[1]) if found else None,
    }
    return fields, params_text


def build_archive(
    args, target: Path, name: str, meta: dict, model, config, eval_metrics: dict | None, traced: dict, params_text: str
) -> None:
    from safetensors.torch import save_file

    with atomic_dir(target) as tmp:
        if args.format == "transformers":
            model_type = read_manifest(args.tokenizer).get("model_type", "bpe")
            write_transformers(tmp, model, Tokenizer.load(args.tokenizer), model_type, meta)
        else:
            write_json(
                tmp / CONFIG_FILE,
                {
                    **config.to_dict(),
                    "variant": meta.get("variant"),
                    "step": meta.get("step"),
                    "num_params": model.num_params(),
                    "format": "ww2lm-gpt",
                },
            )
            save_file(state_for_safetensors(model), str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
            if args.format == "gguf":  # beside our files, so chat and evaluate still load the folder
                write_gguf(tmp / GGUF_FILE, model, Tokenizer.load(args.tokenizer), name)
        copy_tokenizer(args.tokenizer, tmp / "tokenizer")
        (tmp / "params.yaml").write_text(params_text, encoding="utf-8")
        if eval_metrics is not None:
            shutil.copyfile(args.metrics, tmp / "eval.json")
        provenance = {
            "name": name,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "git": git_revision(args.repo),
            **traced,
            "params": yaml.safe_load(params_text),
            "source_model": str(args.model),
            "weights_sha256": sha256_file(tmp / WEIGHTS_FILE),
            "variant": meta.get("variant"),
            "step": meta.get("step"),
            "torch": torch.__version__,
            "format": args.format,
        }
        write_json(tmp / "provenance.json", provenance)
        card = model_card(name, config.to_dict(), model.num_params(), provenance, eval_metrics, config.vocab_size)
        (tmp / "MODEL_CARD.md").write_text(card, encoding="utf-8")
        for path in tmp.rglob("*"):  # atomic writes create 0600 temp files; an archive is for sharing
            path.chmod(0o755 if path.is_dir() else 0o644)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="model.pt, a checkpoint or an exported folder")
    parser.add_argument("--tokenizer", type=Path, required=True, help="tokenizer folder (or its .model file)")
    parser.add_argument(
        "--params",
        type=Path,
        default=Path("params.yaml"),
        help="copied into the archive only when no commit or experiment recorded the model",
    )
    parser.add_argument("--experiment", default=None, help="the DVC experiment the model must come from")
    parser.add_argument("--metrics", type=Path, default=None, help="metrics/eval.json of this model")
    parser.add_argument("--out", type=Path, default=Path("models"), help="archive root")
    parser.add_argument("--name", default=None, help="archive name (default: <variant>-step<step>)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="ww2lm",
        help="ww2lm (ours), transformers (GPT-2 + HF tokenizer), gguf (+ model.gguf)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing archive of that name")
    parser.add_argument("--repo", type=Path, default=Path("."), help="where git and dvc.lock are read")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        target = export_model(args)
    except (ExportError, ModelLoadError, TokenizerError, GitError, json.JSONDecodeError, yaml.YAMLError) as exc:
        log.error("%s", exc)
        return 2
    log.info("exported=%s", target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
