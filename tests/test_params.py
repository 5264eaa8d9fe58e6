import dataclasses
from dataclasses import dataclass

import pytest
import yaml

from common.params import ParamsError, load_section
from corpus.articles import DownloadParams
from corpus.clean import CleanParams
from corpus.windows import WindowParams
from dataset.encode import EncodeParams
from dataset.pack import PackParams
from dataset.shuffle import ShuffleParams
from dataset.tokenizer_training import TokenizerParams
from evaluation.evaluate import EvaluateParams
from quality.dedup import DedupParams
from quality.filter import FilterParams
from synth.generate_params import GenerateParams
from synth.qpt import QptParams
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
SECTIONS = {
    "download": DownloadParams,
    "clean": CleanParams,
    "window": WindowParams,
    "generate": GenerateParams,
    "shuffle": ShuffleParams,
    "pack": PackParams,
    "tokenizer": TokenizerParams,
    "encode": EncodeParams,
    "qpt": QptParams,
    "filter": FilterParams,
    "dedup": DedupParams,
    "train": TrainParams,
    "evaluate": EvaluateParams,
    "orchestrate": OrchestrateParams,
}


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
