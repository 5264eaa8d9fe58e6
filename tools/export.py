"""export: snapshot a trained model into a named, self-contained model archive folder.

`models/<name>/` holds everything needed to run and to trace the model:
  config.json        GPTConfig fields (what model/inference.py load_model reads) + variant, step
  model.safetensors  the weights (safetensors: no pickle, so loading runs no code)
  tokenizer/         spm.model, spm.vocab, tokenizer.json of the tokenizer it was trained with
  params.yaml        an exact copy of the params file that produced it
  provenance.json    git commit and dirty flag, the DVC lock hash of the model output, the
                     source file, the weights' sha256, the creation time
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
ww2_185M_dirty says what a run was), while a DVC output is replaced by every repro.

Inputs:  data/model/model.pt (or a checkpoint, or another export), data/tokenizer, params.yaml,
         metrics/eval.json, dvc.lock and the git repository at --repo
Output:  models/<name>/

Example:
  python -m tools.export --model data/model/model.pt --tokenizer data/tokenizer \
      --params params.yaml --metrics metrics/eval.json --out models --name ww2_185M_dirty
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
import subprocess
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


def git_revision(repo: Path) -> dict:
    """{"commit", "dirty"} of the repository at `repo`; "unknown"/None when git or the repo is
    absent (a source tarball). --no-optional-locks: a status must not write the index while
    someone else commits."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(repo), "--no-optional-locks", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return done.stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain").strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit, "dirty": dirty}


def dvc_lock_hashes(lock: Path, model: Path, repo: Path) -> dict:
    """The hash dvc.lock records for the output that holds `model` (train's data/model) and for
    the same path as the evaluate stage's dependency: equal when eval.json graded this model."""
    if not lock.is_file():
        return {}
    try:
        rel = model.resolve().relative_to(repo.resolve()).as_posix()
    except ValueError:  # the model lives outside the repository: no lock entry can name it
        return {}
    stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {})
    found = {}
    for stage, entry in sorted(stages.items()):
        for kind in ("outs", "deps"):
            for item in entry.get(kind, []) or []:
                path = item.get("path", "")
                if rel == path or rel.startswith(path.rstrip("/") + "/"):
                    key = "model_md5" if kind == "outs" else f"{stage}_dep_md5"
                    found[key] = item.get("md5")
                    if kind == "outs":
                        found["model_stage"], found["model_path"] = stage, path
    return found


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
    try:
        build_archive(args, target, name, meta, model, config, eval_metrics)
    except BaseException:
        shutil.rmtree(target.with_name(target.name + ".tmp"), ignore_errors=True)  # no half archive left behind
        raise
    return target


def build_archive(args, target: Path, name: str, meta: dict, model, config, eval_metrics: dict | None) -> None:
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
        shutil.copyfile(args.params, tmp / "params.yaml")
        if eval_metrics is not None:
            shutil.copyfile(args.metrics, tmp / "eval.json")
        provenance = {
            "name": name,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "git": git_revision(args.repo),
            "dvc": dvc_lock_hashes(args.repo / "dvc.lock", args.model, args.repo),
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
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="copied as is into the archive")
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
    except (ExportError, ModelLoadError, TokenizerError, json.JSONDecodeError) as exc:
        log.error("%s", exc)
        return 2
    log.info("exported=%s", target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
