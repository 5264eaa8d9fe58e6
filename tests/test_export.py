import hashlib
import json
import re
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from dataset.tokenizer import Tokenizer
from model.gpt import GPT
from model.inference import load_model
from model.variants import load_variant
from tests.conftest import ROOT, write_params
from tests.dvc_helpers import committed_dvc_repo
from tests.tokenizer_helpers import sample_articles, train_tokenizer
from tools import export
from tools import provenance as provenance_module

EVAL = {
    "splits": {
        "recall": {"pass_rate": 0.25, "n": 4, "baselines": {"chance": 0.425}},
        "exam": {"ll_acc": 0.5, "ll_acc_norm": 0.5, "generated_acc": 0.25, "baselines": {"chance": 0.25}},
    },
    "val_loss": 5.5,
    "val_ppl": 244.7,
    "contrastive": {"generated": {"first_accuracy": 0.5, "second_accuracy": 0.0, "gap": 0.5}},
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
    assert "# tiny-step42" in card and "| recall | 0.250 | 0.425 |" in card and "| exam ll | 0.500 | 0.250 |" in card
    assert (
        "abc123.dir" in card and "| contrastive: correct option first / second (gap) | 0.500 / 0.000 (0.500) |" in card
    )


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
        "workspace_md5": provenance_module.dvc_md5(project["root"] / "data/model"),  # not what dvc.lock says
    }
    # no commit or experiment recorded it: said so, and the params file given is the best there is
    assert provenance["origin"] == {"kind": "none", "name": None, "ref": None, "commit": None, "baseline": None}
    assert provenance["params_source"].startswith("file ") and provenance["params"]["tokenizer"]["vocab_size"] == 1200
    card = (tmp_path / "ww2_tiny_dirty/MODEL_CARD.md").read_text()
    assert "made by no recorded run" in card and "the folder held `" in card
    assert re.fullmatch(r"[0-9a-f]{64}", provenance["weights_sha256"]) and provenance["step"] == 42
    assert provenance["created"].endswith("+00:00")


def test_git_revision_of_this_repository():
    revision = provenance_module.git_revision(ROOT)
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


STAGE = """\
import pathlib
import shutil

import yaml

seed = yaml.safe_load(open("params.yaml"))["train"]["seed"]
pathlib.Path("data/model").mkdir(parents=True, exist_ok=True)
shutil.copyfile(f"src/{seed}.pt", "data/model/model.pt")
"""


@pytest.fixture
def dvc_repo(project, tmp_path, monkeypatch):
    """A git + DVC repository whose train stage "trains" by copying the model of its seed."""
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src/1.pt").write_bytes(project["model"].read_bytes())
    state = torch.load(project["model"], weights_only=True)
    torch.save({**state, "step": 77}, repo / "src/7.pt")
    dvc_yaml = (
        f"stages:\n  train:\n    cmd: {sys.executable} stage.py\n    deps: [stage.py, src]\n"
        "    params: [train]\n    outs: [data/model]\n"
        "artifacts:\n  ww2lm-model:\n    path: data/model\n    type: model\n"
    )
    run = committed_dvc_repo(repo, {"stage.py": STAGE, "params.yaml": "train:\n  seed: 1\n", "dvc.yaml": dvc_yaml})
    return repo, run


def export_from(project, repo, out, name, *extra):
    argv = ["--model", str(repo / "data/model/model.pt"), "--tokenizer", str(project["tokenizer"])]
    argv += ["--params", str(repo / "params.yaml"), "--out", str(out), "--repo", str(repo), "--name", name]
    code = export.main([*argv, *extra])
    return code, (json.loads((out / name / "provenance.json").read_text()) if code == 0 else None)


@pytest.mark.slow
def test_provenance_names_the_commit_or_experiment_that_made_the_model_and_its_params(
    project, dvc_repo, tmp_path, caplog
):
    repo, run = dvc_repo
    out = tmp_path / "models"
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()

    code, provenance = export_from(project, repo, out, "baseline")
    assert code == 0
    assert provenance["origin"] == {"kind": "commit", "name": "main", "ref": head, "commit": head, "baseline": None}
    assert provenance["params"] == {"train": {"seed": 1}} and provenance["artifact"] == "ww2lm-model"
    assert provenance["dvc"]["workspace_md5"] == provenance["dvc"]["model_md5"]  # our hash is DVC's

    run("dvc", "exp", "run", "-q", "-n", "seed7", "-S", "train.seed=7")
    run("git", "checkout", "params.yaml")  # the workspace params move on; the model is still seed7's
    code, provenance = export_from(project, repo, out, "seven", "--experiment", "seed7")
    assert code == 0
    origin = provenance["origin"]
    assert (origin["kind"], origin["name"], origin["baseline"]) == ("experiment", "seed7", head)
    assert origin["ref"] == f"refs/exps/{head[:2]}/{head[2:]}/seed7" and origin["commit"] != head
    assert provenance["params"] == {"train": {"seed": 7}} and provenance["step"] == 77
    assert (out / "seven/params.yaml").read_text() == "train:\n  seed: 7\n"
    card = (out / "seven/MODEL_CARD.md").read_text()
    assert "made by DVC experiment `seed7`" in card
    assert f"git checkout {head}\ndvc exp apply seed7" in card
    assert f"dvc get . data/model --rev {origin['commit']}" in card

    # found without being named, too
    assert export_from(project, repo, out, "found")[1]["origin"] == origin

    assert export_from(project, repo, out, "other", "--experiment", "seed8")[0] == 2
    assert "not the model experiment 'seed8' recorded" in caplog.text and not (out / "other").exists()


def test_dvc_md5_hashes_a_folder_as_dvc_does(tmp_path):
    # equality with the hash DVC itself records is checked on a real repository above (slow)
    (tmp_path / "a/sub").mkdir(parents=True)
    (tmp_path / "a/model.pt").write_bytes(b"weights")
    (tmp_path / "a/sub/b.json").write_text("{}")
    md5 = {rel: provenance_module.file_md5(tmp_path / "a" / rel) for rel in ("model.pt", "sub/b.json")}
    listing = json.dumps([{"md5": md5[rel], "relpath": rel} for rel in sorted(md5)], sort_keys=True)
    folder_md5 = provenance_module.dvc_md5(tmp_path / "a")
    assert folder_md5 == hashlib.md5(listing.encode()).hexdigest() + ".dir"
    assert provenance_module.dvc_md5(tmp_path / "a/model.pt") == hashlib.md5(b"weights").hexdigest()
    (tmp_path / "a/sub/b.json").write_text("{ }")
    assert provenance_module.dvc_md5(tmp_path / "a") != folder_md5


def test_the_pipeline_model_is_a_dvc_artifact_and_archives_are_git_ignored():
    assert provenance_module.artifact_for(ROOT, "data/model") == "ww2lm-model"
    ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "models/ww2_tiny/model.safetensors"])
    assert ignored.returncode == 0
