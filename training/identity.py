"""A training run's identity: everything the model depends on, and what differs between two runs.

The identity covers the content of the packed data (every .npy of the packed folder and its
meta.json), the tokenizer folder's files, the resolved model config and the train params that
change the math (training/params.py COSMETIC_KEYS are left out). Its hash names the run's
checkpoint folder, so changing pack.seed, the tokenizer or a variant's width starts a new run
instead of resuming the old model; every checkpoint stores the identity and its components,
so a checkpoint given with --resume-from is checked against the run that would use it.

Files are hashed streaming, HASH_CHUNK bytes at a time: at real scale the packed folder is
gigabytes, and memory stays flat (sha256 runs at about 1-2 GB/s, seconds per run start).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from dataset.tokenizer import Tokenizer
from model.config import GPTConfig
from model.variants import load_variant
from training.params import COSMETIC_KEYS, TrainParams, recorded_params

HASH_CHUNK = 1 << 24
COMPONENTS = ("packed_data", "tokenizer", "model_config", "train_params")


def hash_files(paths: list[Path], root: Path) -> str:
    """sha256 over each file's name (relative to root), size and content, in the given order."""
    digest = hashlib.sha256()
    for path in paths:
        name = path.relative_to(root).as_posix() if path != root else path.name
        digest.update(f"{name}\x1f{path.stat().st_size}\x1f".encode())
        with open(path, "rb") as handle:
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def packed_digest(folder: Path) -> str:
    """The packed data's content: every split's arrays and meta.json."""
    files = sorted([*folder.glob("*.npy"), folder / "meta.json"])
    return hash_files([f for f in files if f.is_file()], folder)


def tokenizer_digest(path: Path) -> str:
    """The tokenizer's files (a folder, every file in it, or a single .model file)."""
    if path.is_file():
        return hash_files([path], path)
    return hash_files(sorted(p for p in path.rglob("*") if p.is_file()), path)


def digest_of(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def math_params(params: TrainParams) -> dict:
    """The train params that change what a step computes (COSMETIC_KEYS left out, and the
    NEUTRAL_DEFAULTS at their neutral value, so runs from before those keys keep their identity)."""
    return {k: v for k, v in recorded_params(params).items() if k not in COSMETIC_KEYS}


@dataclass(frozen=True)
class RunIdentity:
    variant: str
    packed_data: str  # sha256 of the packed folder's content
    tokenizer: str  # sha256 of the tokenizer's files
    model_config: dict  # the resolved GPTConfig
    train_params: dict  # math_params

    @property
    def digest(self) -> str:
        return digest_of({name: getattr(self, name) for name in COMPONENTS})

    @property
    def run_id(self) -> str:
        """The checkpoint folder's name: the variant (for people) and the identity hash."""
        return f"{self.variant}-{self.digest[:12]}"

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "digest": self.digest, **dataclasses.asdict(self)}

    def differences(self, stored: dict | None) -> list[str]:
        """What differs from a checkpoint's stored identity, one phrase per component."""
        if not isinstance(stored, dict) or any(name not in stored for name in COMPONENTS):
            return ["the checkpoint records no run identity (written by an older trainer)"]
        found = []
        for name, label in (("packed_data", "packed data"), ("tokenizer", "tokenizer")):
            if stored[name] != getattr(self, name):
                found.append(f"{label} differs (content hash {stored[name][:12]} here {getattr(self, name)[:12]})")
        for name, label in (("model_config", "model config"), ("train_params", "train params")):
            mine, theirs = getattr(self, name), stored[name]
            keys = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            if keys:
                changes = ", ".join(f"{k}: {theirs.get(k)!r} -> {mine.get(k)!r}" for k in keys)
                found.append(f"{label} differ ({changes})")
        return found


def run_identity(params: TrainParams, config: GPTConfig, packed: Path, tokenizer: Path) -> RunIdentity:
    return RunIdentity(
        variant=params.variant,
        packed_data=packed_digest(packed),
        tokenizer=tokenizer_digest(tokenizer),
        model_config=config.to_dict(),
        train_params=math_params(params),
    )


def identity_from_inputs(params: TrainParams, packed: Path, tokenizer: Path) -> RunIdentity:
    """The identity a train run on these inputs has (what a tool needs to find its folder)."""
    config = load_variant(params.variant, vocab_size=Tokenizer.load(tokenizer).vocab_size)
    return run_identity(params, config, Path(packed), Path(tokenizer))
