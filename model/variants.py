"""The registry of named models: data/variants.yaml -> GPTConfig.

`train.variant` in params.yaml names an entry; the train stage lists data/variants.yaml as a
dependency, so editing an entry reruns only what it affects. An entry whose vocab_size is
"auto" takes the tokenizer's size at train time; a fixed one must match it.

Example:
    python -m model.variants        # every variant with its shape and parameter count
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

import yaml

from common.params import read_params
from model.config import GPTConfig

VARIANTS_PATH = Path(__file__).resolve().parent.parent / "data" / "variants.yaml"
CONFIG_FIELDS = frozenset(f.name for f in fields(GPTConfig))
AUTO = "auto"


def load_variants(path: Path = VARIANTS_PATH) -> dict[str, dict]:
    """Every entry of the registry file, as written (vocab_size may still be "auto")."""
    entries = yaml.safe_load(Path(path).read_text())
    if not isinstance(entries, dict):
        raise ValueError(f"{path}: expected a mapping of variant name -> fields")
    for name, entry in entries.items():
        unknown = set(entry) - CONFIG_FIELDS - {"description"}
        if unknown:
            raise ValueError(f"{path}: variant {name!r} has unknown fields {sorted(unknown)}")
    return entries


def load_variant(name: str, vocab_size: int | None = None, path: Path = VARIANTS_PATH) -> GPTConfig:
    """The GPTConfig of variant `name`; `vocab_size` is the tokenizer's, needed when the entry says "auto"."""
    entries = load_variants(path)
    if name not in entries:
        raise KeyError(f"unknown model variant {name!r}; known variants: {', '.join(entries)} (in {path})")
    entry = {k: v for k, v in entries[name].items() if k != "description"}
    declared = entry.get("vocab_size", AUTO)
    if declared == AUTO:
        if vocab_size is None:
            raise ValueError(f"variant {name!r} takes its vocab_size from the tokenizer: pass vocab_size")
        entry["vocab_size"] = vocab_size
    elif vocab_size is not None and vocab_size != declared:
        raise ValueError(
            f"variant {name!r} is built for a {declared}-token vocabulary but the tokenizer has {vocab_size}: "
            f"set tokenizer.vocab_size={declared} or pick a variant with that vocabulary"
        )
    return GPTConfig(**entry)


def main(argv: list[str] | None = None) -> int:
    """Print every variant's shape and parameter count; "auto" vocabularies at the tokenizer's size."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml", help="its tokenizer.vocab_size sizes 'auto' vocabularies")
    args = parser.parse_args(argv)
    auto_vocab = int(read_params(args.params)["tokenizer"]["vocab_size"])
    for name, entry in load_variants().items():
        auto = entry.get("vocab_size", AUTO) == AUTO
        config = load_variant(name, vocab_size=auto_vocab if auto else None)
        print(
            f"{name:14s} layers={config.n_layer:2d} width={config.n_embd:4d} heads={config.n_head:2d} "
            f"context={config.context_length:4d} vocab={config.vocab_size:5d}{'*' if auto else ' '} "
            f"params={config.num_params() / 1e6:7.2f}M"
        )
    print(f"* auto: the tokenizer's size, tokenizer.vocab_size={auto_vocab} in {args.params}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
