import dataclasses
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml

from common.params import load_section
from dataset.bin_packing import fill_contexts
from model.config import GPTConfig
from model.gpt import GPT
from stages import pack, train
from tests.conftest import ROOT
from tests.train_helpers import build_training_data, train_args
from training.batches import Cursor, batch_cu_seqlens, make_batch
from training.best import BestTracker
from training.checkpoint import list_checkpoints, load_checkpoint
from training.distributed import memory_fits
from training.params import TrainParams
from training.schedule import Phase, accumulation_steps, find_batch_size, learning_rate, training_phases, weight_decay


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return build_training_data(tmp_path_factory.mktemp("train-data"))


def with_params(data, path, **train_overrides):
    """A copy of the fixture's params file with some train.* keys changed."""
    params = yaml.safe_load(data["params"].read_text())
    params["train"].update(train_overrides)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def losses(run):
    [ckpt] = list_checkpoints(next((run / "checkpoints").iterdir()))[-1:]
    return [row["loss"] for row in load_checkpoint(ckpt)["history"]["train"]]


@pytest.mark.slow
def test_train_smoke_writes_model_checkpoints_metrics_monitor_and_dvclive(data, tmp_path):
    assert train.main(train_args(data, tmp_path)) == 0
    metrics = json.loads((tmp_path / "train.json").read_text())
    assert metrics["step"] == 8 and metrics["grad_accum"] == 2 and metrics["effective_batch_size"] == 8
    saved = torch.load(tmp_path / "model/model.pt", weights_only=True)
    # the first step's loss is ln(vocab) = ln(1200) = 7.09; 8 steps bring it to 6.53 (val 6.57)
    ln_vocab = math.log(saved["config"]["vocab_size"])
    assert losses(tmp_path)[0] == pytest.approx(ln_vocab, abs=0.2)
    assert metrics["loss"] < ln_vocab - 0.3 and metrics["val_loss"] < ln_vocab - 0.3
    assert saved["config"]["n_layer"] == 2 and "lm_head.weight" in saved["model"]
    [run_dir] = (tmp_path / "checkpoints").iterdir()
    assert run_dir.name.startswith("tiny-")
    assert [p.name for p in list_checkpoints(run_dir)] == ["step-00000004.pt", "step-00000008.pt"]
    assert (tmp_path / "monitor.png").read_bytes()[:4] == b"\x89PNG"
    live = json.loads((tmp_path / "dvclive/metrics.json").read_text())
    assert live["step"] == 8 and "loss" in live["train"] and "loss" in live["recall"]
    # recall loss next to val loss at every evaluation; the shipped weights are the best step's
    newest = load_checkpoint(list_checkpoints(run_dir)[-1])
    assert (newest["batch_size"], newest["grad_accum"]) == (4, 2)  # what a batch_size auto resume reuses
    evals = newest["history"]["val"]
    assert [e["step"] for e in evals] == [4, 8] and all("recall_loss" in e and "val_loss" in e for e in evals)
    best = min(evals, key=lambda e: e["recall_loss"])
    assert (metrics["best_step"], metrics["best_recall_loss"]) == (best["step"], best["recall_loss"])
    assert metrics["recall_loss"] == evals[-1]["recall_loss"] and saved["step"] == metrics["model_step"] == best["step"]
    assert saved["selected"] == "best_recall_loss" and saved["last_step"] == 8
    shipped = load_checkpoint(list_checkpoints(run_dir)[[4, 8].index(best["step"])])["model"]
    assert all(torch.equal(saved["model"][k], shipped[k]) for k in shipped)
    state = load_checkpoint(list_checkpoints(run_dir)[-1])
    assert state["identity"]["run_id"] == run_dir.name and state["best"]["step"] == best["step"]
    rows = (tmp_path / "dvclive/plots/metrics/train/loss.tsv").read_text().splitlines()
    assert len(rows) == 1 + 8  # header + one row per step


@pytest.mark.slow
def test_loss_goes_down(data, tmp_path):
    args = train_args(data, tmp_path)
    with_params(data, tmp_path / "params.yaml", max_steps=30)
    args[args.index("--params") + 1] = str(tmp_path / "params.yaml")
    assert train.main(args) == 0
    history = losses(tmp_path)
    assert sum(history[-5:]) / 5 < sum(history[:5]) / 5 - 0.5


def train_process(args):
    """A fresh process per run: the same threads and settings each time, whatever earlier
    tests in this process did to torch's global state."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "stages.train", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for(path, proc, timeout=120.0):
    """Until `path` exists or the process ends (polling: the trainer writes it atomically)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not path.exists():
        time.sleep(0.01)


@pytest.mark.slow
def test_kill_9_and_resume_gives_the_same_losses_as_a_straight_run(data, tmp_path):
    straight = tmp_path / "straight"
    assert train_process(train_args(data, straight)).wait() == 0
    expected = losses(straight)
    [straight_run] = (straight / "checkpoints").iterdir()

    killed = tmp_path / "killed"
    run_dir = killed / "checkpoints" / straight_run.name  # same params, same run folder
    proc = train_process(train_args(data, killed))
    wait_for(run_dir / "step-00000004.pt", proc)
    proc.send_signal(signal.SIGKILL)  # usually between the two checkpoints; wherever it lands,
    proc.wait()  # the rerun below must give the straight run's losses
    saved = list_checkpoints(run_dir)
    assert saved and saved[0].name == "step-00000004.pt"
    if saved[-1].name != "step-00000008.pt":
        assert not (killed / "model").exists()  # the final model comes after the last checkpoint

    assert train_process(train_args(data, killed)).wait() == 0
    assert losses(killed) == expected  # bit-identical on the CPU
    rows = (killed / "dvclive/plots/metrics/train/loss.tsv").read_text().splitlines()
    assert len(rows) == 1 + 8  # the replayed history shows no step twice


@pytest.mark.slow
def test_a_corrupt_checkpoint_is_a_clear_error_and_the_previous_one_survives(data, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    assert train.main(train_args(data, tmp_path)) == 0
    [run_dir] = (tmp_path / "checkpoints").iterdir()
    newest = list_checkpoints(run_dir)[-1]
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated, like a disk that filled up
    assert train.main(train_args(data, tmp_path)) == 2
    assert "unreadable checkpoint (truncated or corrupt?)" in caplog.text
    assert "--resume-from" in caplog.text and "step-00000004.pt" in caplog.text
    previous = list_checkpoints(run_dir)[0]
    assert load_checkpoint(previous)["step"] == 4
    leftover = run_dir / ".step-00000008.pt.k1ll3d.tmp"  # a torch.save that kill -9 cut short
    leftover.write_bytes(b"\0" * 4096)
    assert train.main(train_args(data, tmp_path, "--resume-from", str(previous))) == 0
    assert not leftover.exists() and "removed_stale_temps=1" in caplog.text
    assert train.main(train_args(data, tmp_path)) == 0  # the corrupt step 8 is no longer newest


@pytest.mark.slow
def test_other_params_never_resume_from_a_foreign_checkpoint(data, tmp_path):
    assert train.main(train_args(data, tmp_path)) == 0
    params = tmp_path / "other.yaml"
    with_params(data, params, lr=0.0005)
    args = train_args(data, tmp_path)
    args[args.index("--params") + 1] = str(params)
    assert train.main(args) == 0
    assert len(list((tmp_path / "checkpoints").iterdir())) == 2


def test_bad_params_and_data_are_clear_errors(data, tmp_path, caplog):
    params = tmp_path / "bad.yaml"
    with_params(data, params, variant="ww2-9000m")
    args = train_args(data, tmp_path)
    args[args.index("--params") + 1] = str(params)
    assert train.main(args) == 2
    assert "ww2-9000m" in caplog.text
    with_params(data, params, batch_size="auto")
    assert train.main(args) == 2
    assert "needs CUDA" in caplog.text
    with_params(data, params, max_steps=-1)  # once wrote an untrained model with rc 0
    assert train.main(args) == 2
    assert (
        "train.max_steps: must be >= 0 (0 = from epochs), got -1" in caplog.text and not (tmp_path / "model").exists()
    )
    assert train.main(train_args({**data, "packed": tmp_path / "nothing"}, tmp_path)) == 2
    assert "no packed training contexts" in caplog.text


def test_schedules():
    assert learning_rate(0, 100, 10, 1.0, 0.1) == pytest.approx(0.1)
    assert learning_rate(9, 100, 10, 1.0, 0.1) == pytest.approx(1.0)
    assert learning_rate(100, 100, 10, 1.0, 0.1) == pytest.approx(0.1)
    assert learning_rate(55, 100, 10, 1.0, 0.1) == pytest.approx(0.55)
    assert [weight_decay(e, 2, 0.1, 0.05) for e in range(4)] == [0.1, 0.1, 0.05, 0.05]
    assert accumulation_steps(120, 3) == 40 and accumulation_steps(120, 7) == 18


def test_auto_batch_probe_with_an_injected_memory_limit():
    # 1 GB of weights + 300 MB per context; 16 GB card with 1 GB headroom and 2 GB of optimizer state
    peak = lambda b: None if b > 64 else 2**30 + b * 300 * 2**20  # noqa: E731
    fits = memory_fits(peak, 15 * 2**30, 2 * 2**30)
    batch = find_batch_size(fits, upper=256)
    assert batch == (15 * 2**30 - 2 * 2**30 - 2**30) // (300 * 2**20) == 40
    assert accumulation_steps(120, batch) == 3
    with pytest.raises(MemoryError):
        find_batch_size(lambda b: False, upper=8)


def test_cursor_rolls_over_epochs_and_batches_keep_records_apart():
    cursor = Cursor(0, 0)
    first = cursor.take(5, 4, seed=1)
    second = cursor.take(5, 4, seed=1)
    assert sorted(first.tolist() + second[:1].tolist()) == [0, 1, 2, 3, 4]
    assert (cursor.epoch, cursor.position) == (1, 3)
    doc_ids = torch.tensor([[0, 0, 1, 1, -1], [0, 0, 0, 1, 1]])
    assert batch_cu_seqlens(doc_ids).tolist() == [0, 2, 4, 5, 8, 10]


@pytest.mark.slow
def test_torchrun_ddp_on_two_cpu_processes_matches_one_process(data, tmp_path):
    """The same script under torchrun (gloo on the CPU, rendezvous on 127.0.0.1): two ranks
    of batch 4 make the same optimizer steps as one process of batch 4 × 2 accumulation."""
    single = tmp_path / "single"
    assert train_process(train_args(data, single)).wait() == 0
    ddp = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = subprocess.run(
        [*torchrun, "-m", "stages.train", *train_args(data, ddp)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((ddp / "train.json").read_text())
    assert metrics["world_size"] == 2 and metrics["grad_accum"] == 1 and metrics["effective_batch_size"] == 8
    assert losses(ddp) == pytest.approx(losses(single), rel=1e-4)


@pytest.mark.slow
def test_a_longer_schedule_is_a_new_run_not_a_resume(data, tmp_path):
    assert train.main(train_args(data, tmp_path)) == 0
    params = tmp_path / "longer.yaml"
    with_params(data, params, max_steps=12)
    args = train_args(data, tmp_path)
    args[args.index("--params") + 1] = str(params)
    assert train.main(args) == 0
    runs = sorted((tmp_path / "checkpoints").iterdir())
    assert len(runs) == 2
    lrs = [row["lr"] for row in load_checkpoint(list_checkpoints(runs[0])[-1])["history"]["train"]]
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:], strict=False)), "no restart of the schedule"


def retrain_args(data, run, params=None, packed=None, *extra):
    args = train_args(data, run, *extra)
    if params:
        args[args.index("--params") + 1] = str(params)
    if packed:
        args[args.index("--packed") + 1] = str(packed)
    return args


@pytest.mark.slow
def test_the_best_step_on_recall_ships_and_survives_a_resume(data, tmp_path):
    """lr 0: the weights never change, so no later evaluation beats the first one; patience 2
    stops at the third evaluation, with the schedule's length unchanged; raising the patience
    (cosmetic: same run) resumes to the end and still ships step 2."""
    params = with_params(data, tmp_path / "p.yaml", lr=0.0, min_lr=0.0, eval_every=2, early_stop_patience=2,
                         checkpoint_every=2, keep_checkpoints=10)  # fmt: skip
    assert train.main(retrain_args(data, tmp_path, params)) == 0
    metrics = json.loads((tmp_path / "train.json").read_text())
    assert (metrics["step"], metrics["total_steps"], metrics["stopped_early"]) == (6, 8, True)
    assert (metrics["best_step"], metrics["model_step"]) == (2, 2)
    assert torch.load(tmp_path / "model/model.pt", weights_only=True)["step"] == 2
    with_params(data, params, lr=0.0, min_lr=0.0, eval_every=2, early_stop_patience=0, checkpoint_every=2,
                keep_checkpoints=10, select_best=False)  # fmt: skip
    assert train.main(retrain_args(data, tmp_path, params)) == 0
    assert len(list((tmp_path / "checkpoints").iterdir())) == 1  # the same run, resumed
    metrics = json.loads((tmp_path / "train.json").read_text())
    assert (metrics["step"], metrics["stopped_early"], metrics["best_step"], metrics["model_step"]) == (8, False, 2, 8)
    history = load_checkpoint(list_checkpoints(next((tmp_path / "checkpoints").iterdir()))[-1])["history"]
    assert [row["step"] for row in history["train"]] == list(range(1, 9))


def test_best_tracker_counts_evaluations_without_a_new_best():
    model = torch.nn.Linear(2, 1)
    best = BestTracker()
    assert [best.update(s, loss, model) for s, loss in [(1, 3.0), (2, 2.0), (3, 2.0), (4, 2.5)]] == [
        True, True, False, False]  # fmt: skip
    assert (best.step, best.loss, best.evals_since, best.should_stop(2), best.should_stop(0)) == (
        2,
        2.0,
        2,
        True,
        False,
    )
    assert best.state(2)["model"] is None and best.state(4)["model"] is best.weights
    again = BestTracker.from_state(best.state(4), 4, {})
    assert (again.step, again.loss, again.evals_since) == (2, 2.0, 2) and again.weights is best.weights


@pytest.mark.slow
def test_run_identity_covers_the_packed_data_and_foreign_checkpoints_are_refused(data, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    assert train.main(train_args(data, tmp_path)) == 0
    [first] = (tmp_path / "checkpoints").iterdir()
    # nothing changed: the same run resumes (already at its end: no step is trained again)
    assert train.main(train_args(data, tmp_path)) == 0
    assert "resumed step=8" in caplog.text and list((tmp_path / "checkpoints").iterdir()) == [first]
    # pack.seed changes only the order of the contexts: a new run, a different model
    other = tmp_path / "packed-seed-7"
    reseeded = tmp_path / "reseeded.yaml"
    params = yaml.safe_load(data["params"].read_text())
    params["pack"]["seed"] = 7
    reseeded.write_text(yaml.safe_dump(params, sort_keys=False))
    assert pack.main(["--params", str(reseeded), "--tokens", str(data["tokens"]), "--out", str(other),
                      "--metrics", str(tmp_path / "pack.json")]) == 0  # fmt: skip
    model = torch.load(tmp_path / "model/model.pt", weights_only=True)["model"]
    assert train.main(retrain_args(data, tmp_path, packed=other)) == 0
    assert len(list((tmp_path / "checkpoints").iterdir())) == 2
    assert not torch.equal(torch.load(tmp_path / "model/model.pt", weights_only=True)["model"]["lm_head.weight"],
                           model["lm_head.weight"])  # fmt: skip
    # --resume-from another run's checkpoint: refused, naming what differs; the flag overrides
    foreign = list_checkpoints(first)[0]
    caplog.clear()
    lr = with_params(data, tmp_path / "lr.yaml", lr=0.0005)
    assert train.main(retrain_args(data, tmp_path / "b", lr, other, "--resume-from", str(foreign))) == 2
    assert "checkpoint of another run" in caplog.text and "packed data differs" in caplog.text
    shipped_lr = yaml.safe_load(data["params"].read_text())["train"]["lr"]
    assert (
        f"train params differ (lr: {shipped_lr} -> 0.0005)" in caplog.text and "--allow-foreign-resume" in caplog.text
    )
    assert not (tmp_path / "b" / "model").exists()
    args = retrain_args(data, tmp_path / "b", lr, other, "--resume-from", str(foreign), "--allow-foreign-resume")
    assert train.main(args) == 0
    assert "foreign_resume" in caplog.text and "resumed step=4" in caplog.text
    assert json.loads((tmp_path / "b" / "train.json").read_text())["step"] == 8


def two_record_context():
    """One packed context of 64 tokens: record A (20 tokens) then record B (30), padding after;
    loss on the last half of each record."""
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(1, 256, (50,), generator=gen).numpy().astype("uint16")
    mask = torch.tensor([0] * 10 + [1] * 10 + [0] * 15 + [1] * 15, dtype=torch.uint8).numpy()
    offsets = torch.tensor([0, 20, 50]).numpy()
    segments = np.array([[0, 0, 0, 0, 20], [0, 20, 1, 0, 30]])  # SEGMENT_COLUMNS: A at 0..19, B at 20..49
    return fill_contexts(segments, ids, mask, offsets, 64, 0, 1)


@pytest.mark.parametrize("isolation", [True, False])
def test_isolation_off_lets_a_records_loss_reach_the_previous_record(isolation):
    arrays = two_record_context()
    batch = make_batch(arrays, torch.tensor([0]).numpy(), torch.device("cpu"), isolation=isolation)
    assert torch.equal(batch.loss_mask, torch.from_numpy(arrays["target_mask"]).bool())  # loss mask unchanged
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=256, context_length=64, n_layer=2, n_head=4, n_embd=32), "records").eval()
    captured = []

    def keep_embeddings(module, inputs, output):
        output.retain_grad()  # each token's embedding: its own leaf of the graph
        captured.append(output)

    model.transformer.wte.register_forward_hook(keep_embeddings)
    only_b = batch.loss_mask.clone()
    only_b[0, :20] = False  # record B's loss alone
    _, loss = model(**{**batch.as_kwargs(), "loss_mask": only_b})
    loss.backward()
    grad_a = captured[0].grad[0, :20].abs().sum()
    if isolation:
        assert grad_a == 0 and batch.positions[0, 20] == 0  # B starts at position 0 and never sees A
    else:
        assert grad_a > 0 and batch.positions[0].tolist() == list(range(64))  # one causal sequence


def test_training_phases_split_the_contexts_and_refuse_pretraining_without_raw_text():
    params = dataclasses.replace(load_section(ROOT / "params.yaml", "train", TrainParams), epochs=6.0)
    assert training_phases(params, 100, None, 16) == {"main": Phase(0, 100, math.ceil(6.0 * 100 / 16))}
    two = dataclasses.replace(params, pretrain_epochs=2.0)
    assert training_phases(two, 100, 40, 16) == {"pretrain": Phase(0, 40, 5), "main": Phase(40, 60, 23)}
    for raw in (None, 0):
        with pytest.raises(ValueError, match="encode.mix.raw > 0 and pack.separate_raw: true"):
            training_phases(two, 100, raw, 16)
    with pytest.raises(ValueError, match="pretrain_epochs: must be >= 0"):
        training_phases(dataclasses.replace(params, pretrain_epochs=-1.0), 100, 40, 16)
    cursor = Cursor(0, 0)
    assert sorted(cursor.take(5, 5, seed=1, first=40).tolist()) == [40, 41, 42, 43, 44]


@pytest.fixture(scope="module")
def raw_data(tmp_path_factory):
    settings = {"encode.mix.raw": 1.0, "pack.separate_raw": True, "train.checkpoint_every": 2, "train.max_steps": 6}
    return build_training_data(tmp_path_factory.mktemp("raw-data"), **settings)


def pretrain_args(data, run, *extra):
    """Train args with train.pretrain_epochs set so that the raw phase is exactly 3 steps of 8 contexts."""
    raw = json.loads((data["packed"] / "meta.json").read_text())["raw_contexts"]
    args = train_args(data, run, *extra)
    args[args.index("--params") + 1] = str(
        with_params(data, run.parent / f"{run.name}.yaml", pretrain_epochs=2.5 * 8 / raw)
    )
    return args


@pytest.mark.slow
def test_two_phase_training_pretrains_on_raw_contexts_and_resumes_mid_phase_exactly(raw_data, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    straight = tmp_path / "straight"
    assert train.main(pretrain_args(raw_data, straight)) == 0
    metrics = json.loads((straight / "train.json").read_text())
    assert metrics["pretrain_steps"] == 3 and metrics["total_steps"] == 6 and "phase=main step=3" in caplog.text
    [run_dir] = (straight / "checkpoints").iterdir()
    phases = {load_checkpoint(p)["step"]: load_checkpoint(p)["phase"] for p in list_checkpoints(run_dir)}
    assert phases == {2: "pretrain", 4: "main", 6: "main"}
    resumed = tmp_path / "resumed"
    assert train.main(pretrain_args(raw_data, resumed, "--stop-after", "2")) == 0  # mid-pretraining
    assert train.main(pretrain_args(raw_data, resumed)) == 0
    assert losses(resumed) == losses(straight)  # bit-identical on the CPU, across the phase switch
    saved = torch.load(straight / "model/model.pt", weights_only=False)
    assert saved["params"]["pretrain_epochs"] > 0 and "isolation" not in saved["params"]  # neutral: not recorded


def test_pretraining_without_raw_contexts_is_refused_naming_the_keys(data, tmp_path, caplog):
    args = train_args(data, tmp_path)
    args[args.index("--params") + 1] = str(with_params(data, tmp_path / "p.yaml", pretrain_epochs=1.0))
    assert train.main(args) == 2
    assert "train.pretrain_epochs=1.0" in caplog.text and "pack.separate_raw: true" in caplog.text
    assert not (tmp_path / "checkpoints").exists()


def test_an_auto_batch_that_fits_nowhere_is_a_clear_error_not_a_traceback(data, tmp_path, caplog, monkeypatch):
    class NoRoom:
        def __init__(self, params, args):
            raise MemoryError(
                "train.batch_size auto: even a batch of 1 does not fit the memory left after the headroom"
            )

    monkeypatch.setattr(train, "Trainer", NoRoom)
    assert train.main(train_args(data, tmp_path)) == 2
    assert "even a batch of 1 does not fit" in caplog.text
