import dataclasses
from dataclasses import dataclass

import pytest
import yaml

from common.params import ParamsError, load_section
from corpus import download, windows
from corpus.articles import DownloadParams
from corpus.windows import WindowParams
from dataset import shuffle
from dataset.shuffle import ShuffleParams
from experiments.recipes import SECTIONS as STAGE_SECTIONS
from synth import generate_params
from synth.generate_params import GenerateParams
from tests.conftest import ROOT
from tools.orchestrate import OrchestrateParams
from training.params import TrainParams


@dataclass(frozen=True)
class Example:
    lr: float
    steps: int
    name: str
    tags: tuple[str, ...]


def write(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_loads_a_section_into_a_frozen_dataclass(tmp_path):
    path = write(tmp_path, "train:\n  lr: 1\n  steps: 3\n  name: x\n  tags: [a, b]\n")
    params = load_section(path, "train", Example)
    assert params == Example(lr=1, steps=3, name="x", tags=("a", "b"))
    with pytest.raises(AttributeError):
        params.lr = 2  # frozen


@pytest.mark.parametrize(
    "text, message",
    [
        ("train:\n  lr: 1\n  steps: 3\n  name: x\n", "missing key(s) tags"),
        ("train:\n  lr: 1\n  stepz: 3\n  steps: 3\n  name: x\n  tags: []\n", "unknown key(s) stepz"),
        ("train:\n  lr: fast\n  steps: 3\n  name: x\n  tags: []\n", "train.lr: expected float"),
        ("train:\n  lr: 1\n  steps: 2.5\n  name: x\n  tags: []\n", "train.steps: expected int"),
        ("other:\n  a: 1\n", "missing section 'train'"),
        ("train: [1, 2\n", "not valid YAML"),
    ],
)
def test_bad_params_name_the_key_and_the_file(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ParamsError) as err:
        load_section(path, "train", Example)
    assert message in str(err.value)
    assert str(path) in str(err.value)


# Every section of the shipped params.yaml and the dataclass that reads it.
# Every section a stage loads (the recipes check the same ones) and the orchestrator's.
SECTIONS = {**STAGE_SECTIONS, "orchestrate": OrchestrateParams}


def test_every_section_of_the_shipped_params_loads_into_its_dataclass():
    shipped = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(shipped) == set(SECTIONS)
    for section, cls in SECTIONS.items():
        params = load_section(ROOT / "params.yaml", section, cls)
        assert isinstance(params, cls)
        assert {f.name for f in dataclasses.fields(cls)} == set(shipped[section]), section


@dataclass(frozen=True)
class Inner:
    model: str
    temperature: float


@dataclass(frozen=True)
class Outer:
    backend: str
    openai: Inner


def test_nested_sections_are_checked_with_their_full_name(tmp_path):
    path = write(tmp_path, "generate:\n  backend: openai\n  openai:\n    model: qwen\n    temperature: 0.7\n")
    assert load_section(path, "generate", Outer).openai == Inner("qwen", 0.7)
    path = write(tmp_path, "generate:\n  backend: openai\n  openai:\n    model: qwen\n    temprature: 0.7\n")
    with pytest.raises(ParamsError, match=r"generate.openai: unknown key\(s\) temprature"):
        load_section(path, "generate", Outer)


# A nonsense value of each key that used to be taken silently (or crash later), the loader
# that checks it, and the words of the refusal. Each case overrides one key of the shipped
# params.yaml: the rest stays valid, so the refusal is about that key alone.
def check_train(path):
    load_section(path, "train", TrainParams)


def check_with(section, cls, check):
    return lambda path: check(load_section(path, section, cls), str(path))


def check_generate(path):
    generate_params.check_params(load_section(path, "generate", GenerateParams), f"{path}:generate")


REFUSED = [
    ("train", "max_steps", -1, check_train, "train.max_steps: must be >= 0"),
    ("train", "epochs", 0, check_train, "train.epochs: must be > 0"),
    ("train", "effective_batch_size", 0, check_train, "train.effective_batch_size: must be >= 1"),
    ("train", "batch_size", 0, check_train, "train.batch_size: must be >= 1 or auto"),
    ("train", "batch_size", "big", check_train, "train.batch_size: must be >= 1 or auto"),
    ("train", "grad_clip", -1.0, check_train, "train.grad_clip: must be >= 0"),
    ("train", "warmup_steps", -5, check_train, "train.warmup_steps: must be >= 0"),
    ("train", "device", "gpu", check_train, "train.device: must be one of auto, cpu, cuda, got 'gpu'"),
    ("train", "attention", "flash2", check_train, "train.attention: must be auto or one of"),
    ("train", "keep_checkpoints", 0, check_train, "train.keep_checkpoints: must be >= 1"),
    ("train", "checkpoint_every", 0, check_train, "train.checkpoint_every: must be >= 1"),
    ("train", "log_every", 0, check_train, "train.log_every: must be >= 1"),
    ("train", "monitor_every", 0, check_train, "train.monitor_every: must be >= 1"),
    ("train", "lr", -0.001, check_train, "train.lr: must be >= 0"),
    ("train", "min_lr", 1.0, check_train, "train.min_lr: must be in [0, lr]"),
    ("train", "beta1", 1.0, check_train, "train.beta1: must be in [0, 1)"),
    ("train", "beta2", -0.1, check_train, "train.beta2: must be in [0, 1)"),
    ("train", "seed", -1, check_train, "train.seed: must be >= 0"),
    ("shuffle", "seed", -1, check_with("shuffle", ShuffleParams, shuffle.check_params), "shuffle.seed: must be >= 0"),
    ("download", "batch_size", 0, check_with("download", DownloadParams, download.check_params),
     "download.batch_size: must be in 1..50, got 0"),
    ("download", "batch_size", 51, check_with("download", DownloadParams, download.check_params),
     "download.batch_size: must be in 1..50"),
    ("download", "timeout_seconds", 0, check_with("download", DownloadParams, download.check_params),
     "download.timeout_seconds: must be > 0"),
    ("window", "stride", 9, check_with("window", WindowParams, windows.check_params),
     "window.stride: 9 is more than window.size 8"),
    ("generate", "weights", {"contrast_person": "high"}, check_generate,
     "generate.weights.contrast_person: expected a number >= 0"),
    ("generate", "weights", {"contrast_person": -1}, check_generate, "generate.weights.contrast_person"),
]  # fmt: skip


@pytest.mark.parametrize(
    "section, key, value, check, message", REFUSED, ids=[f"{c[0]}.{c[1]}={c[2]!r}" for c in REFUSED]
)
def test_nonsense_values_are_refused_with_the_key_name(tmp_path, section, key, value, check, message):
    shipped = yaml.safe_load((ROOT / "params.yaml").read_text())
    check(write(tmp_path, yaml.safe_dump(shipped)))  # the shipped value passes
    shipped[section][key] = value
    path = write(tmp_path, yaml.safe_dump(shipped))
    with pytest.raises(ParamsError) as err:
        check(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_a_key_given_twice_is_refused_not_last_one_wins(tmp_path):
    path = write(tmp_path, "train:\n  lr: 1\n  steps: 3\n  name: x\n  tags: []\n  lr: 2\n")
    with pytest.raises(ParamsError, match=r"params.yaml: duplicate key 'lr' at line 6 \(first at line 2\)"):
        load_section(path, "train", Example)
    path = write(tmp_path, "train:\n  lr: 1\n  steps: 3\n  name: x\n  tags: []\nother: {}\ntrain: {}\n")
    with pytest.raises(ParamsError, match="duplicate key 'train'"):
        load_section(path, "train", Example)
