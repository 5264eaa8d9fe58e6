from dataclasses import dataclass

import pytest

from common.params import ParamsError, load_section


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


def test_every_stage_section_of_the_shipped_params_loads():
    from stages.clean import CleanParams
    from stages.download import DownloadParams
    from stages.window import WindowParams

    for section, cls in [("download", DownloadParams), ("clean", CleanParams), ("window", WindowParams)]:
        load_section("params.yaml", section, cls)


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
