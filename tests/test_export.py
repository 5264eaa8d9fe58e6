import json
import re

import pytest
import torch
from safetensors.torch import load_file

from dataset.tokenizer import Tokenizer
from model.gpt import GPT
from model.inference import load_model
from model.variants import load_variant
from tests.conftest import ROOT, write_params
from tests.tokenizer_helpers import sample_articles, train_tokenizer
from tools import export

EVAL = {
    "pass_rate": 0.25,
    "questions": {"total": 4, "pass": 1, "fail": 2, "unparsed": 1, "error": 0},
    "per_type": {"who": {"total": 4, "pass_rate": 0.25}},
    "val_loss": 5.5,
    "val_ppl": 244.7,
    "positional_bias": {"first_accuracy": 0.5, "second_accuracy": 0.0, "gap": 0.5},
    "historian": {"mean_answer_tokens": 40.0, "stopped_share": 1.0},
    "judge": "heuristic",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A tokenizer, a model.pt as the train stage writes it (random tiny weights: export does not
    care how good they are), eval metrics and a dvc.lock naming the model's folder."""
    root = tmp_path_factory.mktemp("export")
    params = write_params(root, {"tokenizer.vocab_size": 1200})
    assert train_tokenizer(root / "tokenizer", params, sample_articles()[:4]) == 0
    tokenizer = root / "tokenizer/tok"
    torch.manual_seed(0)
    config = load_variant("tiny", vocab_size=Tokenizer.load(tokenizer).vocab_size)
    model = GPT(config)
    (root / "data/model").mkdir(parents=True)
    torch.save(
        {
            "config": config.to_dict(),
            "model": model.state_dict(),
            "step": 42,
            "variant": "tiny",
            "params": {"lr": 0.003},
        },
        root / "data/model/model.pt",
    )
    (root / "eval.json").write_text(json.dumps(EVAL))
    (root / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  train:\n    cmd: python -m stages.train\n"
        "    outs:\n    - path: data/model\n      md5: abc123.dir\n      size: 1\n"
        "  evaluate:\n    cmd: python -m stages.evaluate\n"
        "    deps:\n    - path: data/model\n      md5: abc123.dir\n"
    )
    return {
        "root": root,
        "params": params,
        "tokenizer": tokenizer,
        "model": root / "data/model/model.pt",
        "metrics": root / "eval.json",
    }


def args(project, out, *extra):
    return [
        "--model",
        str(project["model"]),
        "--tokenizer",
        str(project["tokenizer"]),
        "--params",
        str(project["params"]),
        "--metrics",
        str(project["metrics"]),
        "--out",
        str(out),
        "--repo",
        str(project["root"]),
        *extra,
    ]


def test_export_round_trip_gives_the_same_logits(project, tmp_path):
    assert export.main(args(project, tmp_path / "models")) == 0
    folder = tmp_path / "models/tiny-step42"  # default name: variant + step
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*")}
    assert names == {
        "config.json",
        "model.safetensors",
        "params.yaml",
        "provenance.json",
        "eval.json",
        "MODEL_CARD.md",
        "tokenizer",
        "tokenizer/spm.model",
        "tokenizer/spm.vocab",
        "tokenizer/tokenizer.json",
    }
    original, _ = load_model(project["model"])
    exported, config = load_model(folder)
    idx = torch.randint(config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(original(idx)[0], exported(idx)[0], atol=1e-6, rtol=0)
    weights = load_file(folder / "model.safetensors")
    assert not torch.equal(weights["lm_head.weight"], weights["transformer.wte.weight"])  # untied: its own tensor
    assert (folder / "params.yaml").read_bytes() == project["params"].read_bytes()
    assert json.loads((folder / "eval.json").read_text()) == EVAL
    assert Tokenizer.load(folder / "tokenizer").vocab_size == config.vocab_size
    saved = json.loads((folder / "config.json").read_text())
    assert (saved["variant"], saved["step"], saved["n_layer"]) == ("tiny", 42, 2)
    card = (folder / "MODEL_CARD.md").read_text()
    assert "# tiny-step42" in card and "| pass rate | 0.250 |" in card and "abc123.dir" in card


def test_provenance_records_git_dvc_and_weights(project, tmp_path):
    assert export.main(args(project, tmp_path, "--name", "ww2_tiny_dirty")) == 0
    provenance = json.loads((tmp_path / "ww2_tiny_dirty/provenance.json").read_text())
    # the project root is a tmp folder outside any git repository: recorded as unknown, not guessed
    assert provenance["git"] == {"commit": "unknown", "dirty": None}
    assert provenance["dvc"] == {
        "model_md5": "abc123.dir",
        "model_path": "data/model",
        "model_stage": "train",
        "evaluate_dep_md5": "abc123.dir",
    }
    assert re.fullmatch(r"[0-9a-f]{64}", provenance["weights_sha256"]) and provenance["step"] == 42
    assert provenance["created"].endswith("+00:00")


def test_git_revision_of_this_repository():
    revision = export.git_revision(ROOT)
    # a checkout gives its commit; a source tarball (no .git) or a machine without git gives "unknown"
    assert revision["commit"] == "unknown" or re.fullmatch(r"[0-9a-f]{40}", revision["commit"])
    assert revision["dirty"] in (True, False, None)


def test_refuses_to_overwrite_unless_forced(project, tmp_path, caplog):
    assert export.main(args(project, tmp_path, "--name", "m")) == 0
    before = (tmp_path / "m/provenance.json").read_text()
    assert export.main(args(project, tmp_path, "--name", "m")) == 2
    assert "already exists" in caplog.text and (tmp_path / "m/provenance.json").read_text() == before
    assert export.main(args(project, tmp_path, "--name", "m", "--force")) == 0
    assert not (tmp_path / "m.tmp").exists()


def test_an_export_exports_again_and_without_metrics(project, tmp_path):
    assert export.main(args(project, tmp_path, "--name", "first")) == 0
    again = [
        "--model",
        str(tmp_path / "first"),
        "--tokenizer",
        str(tmp_path / "first/tokenizer"),
        "--params",
        str(tmp_path / "first/params.yaml"),
        "--out",
        str(tmp_path),
        "--repo",
        str(tmp_path),
    ]
    assert export.main(again) == 0
    folder = tmp_path / "tiny-step42"
    assert not (folder / "eval.json").exists() and "Not evaluated" in (folder / "MODEL_CARD.md").read_text()
    assert load_file(folder / "model.safetensors").keys() == load_file(tmp_path / "first/model.safetensors").keys()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--model": "missing.pt"}, "model not found"),
        ({"--metrics": "missing.json"}, "eval metrics not found"),
        ({"--name": "../escape"}, "--name"),
        ({"--tokenizer": "missing"}, "tokenizer model not found"),
    ],
)
def test_bad_inputs_fail_clearly_and_leave_nothing(project, tmp_path, caplog, change, message):
    argv = args(project, tmp_path / "models")
    for flag, value in change.items():
        argv += [flag, str(tmp_path / value) if flag != "--name" else value]
    assert export.main(argv) == 2
    assert message in caplog.text
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_corrupt_model_is_a_clear_error(project, tmp_path, caplog):
    bad = tmp_path / "model.pt"
    bad.write_bytes(project["model"].read_bytes()[:1000])
    argv = args(project, tmp_path / "models")
    argv[argv.index("--model") + 1] = str(bad)
    assert export.main(argv) == 2
    assert "unreadable model file" in caplog.text
