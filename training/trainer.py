"""The trainer behind stages/train.py: set-up, resume, steps, checkpoints, monitors, outputs.

At every evaluation it computes the validation loss (held-out articles) and the recall loss
(held-out questions of trained articles, the packed `recall` split) and tracks the best step
on recall (training/best.py): with `select_best` that step's weights are the shipped model;
`early_stop_patience` evaluations without a new best stop the run (the cosine schedule keeps
its full length: stopping early never changes a step's learning rate). The checkpoint folder
is named after the run identity (training/identity.py): a checkpoint of another identity is
never resumed, unless given with --resume-from and --allow-foreign-resume.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from common.devices import pick_device
from common.files import atomic_write, remove_stale_temps, write_json
from common.progress import progress
from common.stores import exclusive
from dataset.packed_files import DataError, load_packed, packed_width, raw_context_count
from dataset.tokenizer import Tokenizer
from model.gpt import GPT, set_weight_decay
from model.variants import load_variant
from training.batches import Cursor, make_batch
from training.best import BestTracker
from training.checkpoint import CheckpointError, capture_rng, restore_rng, resume_state, save_checkpoint
from training.distributed import (
    agree_batch_size,
    auto_batch_upper,
    choose_auto_batch,
    probe_batch_size,
    setup_distributed,
    wrap_model,
)
from training.identity import run_identity
from training.live import open_live
from training.monitor import render_monitor
from training.params import TrainParams, recorded_params
from training.precision import autocast
from training.schedule import accumulation_steps, learning_rate, training_phases, weight_decay
from training.validation import validation_loss

log = logging.getLogger("train")


class Trainer:
    def __init__(self, params: TrainParams, args) -> None:
        self.params, self.args = params, args
        self.dist = setup_distributed("cuda" if params.device != "cpu" and torch.cuda.is_available() else "cpu")
        self.device = pick_device(params.device, "train.device", self.dist.local_rank)
        torch.manual_seed(params.seed)

        self.train_data = load_packed(args.packed, "train")
        if self.train_data is None or len(self.train_data["tokens"]) == 0:
            raise DataError(f"{args.packed}: no packed training contexts (run the pack stage)")
        self.val_data = load_packed(args.packed, "val")
        self.recall_data = load_packed(args.packed, "recall")
        if self.recall_data is None or len(self.recall_data["tokens"]) == 0:
            log.warning("%s: no packed recall split: the last step ships (rerun encode and pack)", args.packed)
        self.width = packed_width(args.packed)
        self.config = load_variant(params.variant, vocab_size=Tokenizer.load(args.tokenizer).vocab_size)
        if self.width > self.config.context_length:
            raise ValueError(
                f"pack.context_length={self.width} exceeds the {params.variant} variant's "
                f"context_length={self.config.context_length}"
            )
        self.raw_model = GPT(
            self.config, attention_backend=params.attention, deterministic_attention=params.flash_deterministic
        ).to(self.device)
        self.identity = run_identity(params, self.config, args.packed, args.tokenizer)
        self.run_dir = args.checkpoints / self.identity.run_id
        self.resume = resume_state(self.run_dir, self.args.resume_from)
        self.batch = self._physical_batch()
        self.accum = accumulation_steps(params.effective_batch_size, self.batch * self.dist.world)
        per_step = self.batch * self.accum * self.dist.world
        self.phases = training_phases(params, len(self.train_data["tokens"]), raw_context_count(args.packed), per_step)
        self.pretrain_steps = self.phases["pretrain"].steps if "pretrain" in self.phases else 0
        self.total_steps = params.max_steps or sum(phase.steps for phase in self.phases.values())
        self.optimizer = self.raw_model.configure_optimizer(
            params.weight_decay, params.lr, (params.beta1, params.beta2)
        )
        self.model = wrap_model(self.raw_model, self.dist.world, self.device, params.compile)
        self.best = BestTracker()
        self.stopped_early = False
        self.title = (
            f"{params.variant} ({self.raw_model.num_params() / 1e6:.2f}M) | lr {params.lr:g}->{params.min_lr:g} "
            f"warmup {params.warmup_steps} | batch {self.batch}x{self.accum}x{self.dist.world}="
            f"{per_step} | wd {params.weight_decay:g}->{params.weight_decay_late:g}@{params.wd_switch_epochs}ep"
            f" | ctx {self.width} | vocab {self.config.vocab_size} | {self.device.type}"
        )

    def _physical_batch(self) -> int:
        p = self.params
        if p.batch_size != "auto":
            return int(p.batch_size)
        if self.device.type != "cuda":
            raise ValueError("train.batch_size: 'auto' probes GPU memory and needs CUDA; set a number on the CPU")
        upper = auto_batch_upper(p.effective_batch_size, self.dist.world, p.max_auto_batch)
        batch = choose_auto_batch(
            lambda cap: probe_batch_size(self.raw_model, self.device, self.width, p.vram_headroom_gb, cap),
            lambda local: agree_batch_size(local, self.dist.world, self.device),
            upper,
            stored=self.resume[1].get("batch_size") if self.resume else None,
        )
        log.info(
            "auto_batch=%d upper=%d headroom_gb=%.1f resumed=%s", batch, upper, p.vram_headroom_gb, bool(self.resume)
        )
        return batch

    # --- state ---------------------------------------------------------------------------

    def phase_at(self, step: int) -> str:
        return "pretrain" if step < self.pretrain_steps else "main"

    def _restore(self) -> tuple[int, Cursor, dict]:
        if self.resume is None:
            self.phase = self.phase_at(0)
            return 0, Cursor(0, 0), {"train": [], "val": [], "judge": []}
        path, state = self.resume
        self.resume = None  # the state (weights, optimizer) is not kept once restored
        differences = self.identity.differences(state.get("identity"))
        if differences:
            what = "; ".join(differences)
            if not (self.args.resume_from and self.args.allow_foreign_resume):
                raise CheckpointError(
                    f"{path}: checkpoint of another run: {what}; refusing to resume it "
                    "(pass --allow-foreign-resume with --resume-from to resume it anyway)"
                )
            log.warning("foreign_resume path=%s differs=%s", path, what)
        self.raw_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        restore_rng(state["rng"], self.device)
        self.best = BestTracker.from_state(state.get("best"), state["step"], state["model"])
        self.phase = state.get("phase", "main")  # the cursor below counts epochs of this phase
        log.info(
            "resumed step=%d phase=%s epoch=%d position=%d from=%s",
            state["step"],
            self.phase,
            state["epoch"],
            state["epoch_position"],
            self.run_dir,
        )
        return state["step"], Cursor(state["epoch"], state["epoch_position"]), state["history"]

    def _save(self, step: int, cursor: Cursor, history: dict) -> None:
        if not self.dist.main:
            return
        state = {
            "model": self.raw_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": step,
            "epoch": cursor.epoch,
            "epoch_position": cursor.position,
            "phase": self.phase,  # which training phase epoch and epoch_position belong to
            "rng": capture_rng(self.device),
            "history": history,
            "config": self.config.to_dict(),
            "variant": self.params.variant,
            "params": recorded_params(self.params),
            "total_steps": self.total_steps,
            "batch_size": self.batch,  # batch_size auto: a resume reuses it instead of probing again
            "grad_accum": self.accum,
            "title": self.title,
            "identity": self.identity.to_dict(),
            "best": self.best.state(step),
            "stopped_early": self.stopped_early,
        }
        path = save_checkpoint(self.run_dir, step, state, self.params.keep_checkpoints)
        log.info("checkpoint step=%d path=%s", step, path)

    # --- loop ----------------------------------------------------------------------------

    def run(self) -> int:
        # Two queued experiments of one identity would otherwise interleave their checkpoints.
        guard = exclusive(self.run_dir, "this run's checkpoints") if self.dist.main else contextlib.nullcontext()
        with guard:
            if self.dist.main:  # the folder's only writer now: any temp file here is a killed write's
                removed = remove_stale_temps(self.run_dir)
                if removed:
                    log.info("removed_stale_temps=%d folder=%s", removed, self.run_dir)
            return self._train()

    def _train(self) -> int:
        p = self.params
        step, cursor, history = self._restore()
        judged = self.run_dir / "judge.json"  # written by tools/orchestrate.py between slices
        if judged.exists():
            history["judge"] = json.loads(judged.read_text())
        live = self._live(history)
        stop = min(self.total_steps, self.args.stop_after or self.total_steps)
        log.info(
            "variant=%s params=%d steps=%d..%d batch=%dx%d device=%s",
            p.variant,
            self.raw_model.num_params(),
            step,
            stop,
            self.batch,
            self.accum,
            self.device,
        )
        bar = progress(total=stop, initial=step, desc="train", unit="step", disable=not self.dist.main)
        # a run stopped early resumes when the patience is raised (early_stop_patience is cosmetic)
        self.stopped_early = step < self.total_steps and self.best.should_stop(p.early_stop_patience)
        while step < stop and not self.stopped_early:
            if self.phase_at(step) != self.phase:  # pretraining done: the main phase starts at its epoch 0
                self.phase, cursor = self.phase_at(step), Cursor(0, 0)
                log.info("phase=%s step=%d contexts=%d", self.phase, step, self.phases[self.phase].contexts)
            phase = self.phases[self.phase]
            started = time.perf_counter()
            lr = learning_rate(step, self.total_steps, p.warmup_steps, p.lr, p.min_lr)
            decay = weight_decay(cursor.epoch, p.wd_switch_epochs, p.weight_decay, p.weight_decay_late)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            set_weight_decay(self.optimizer, decay)
            loss_sum, tokens = 0.0, 0
            for micro in range(self.accum):
                rows = cursor.take(phase.contexts, self.batch * self.dist.world, p.seed, phase.first)
                rows = rows[self.dist.rank * self.batch : (self.dist.rank + 1) * self.batch]
                data = make_batch(self.train_data, rows, self.device, isolation=p.isolation)
                sync = self.dist.world == 1 or micro == self.accum - 1
                with contextlib.nullcontext() if sync else self.model.no_sync(), autocast(self.device):
                    _, loss = self.model(**data.as_kwargs(), return_logits=False)
                (loss / self.accum).backward()
                loss_sum += float(loss.detach())
                tokens += data.idx.numel()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), p.grad_clip or float("inf"))
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            step += 1
            row = {
                "step": step,
                "epoch": cursor.epoch,
                "loss": self._mean(loss_sum / self.accum),
                "lr": lr,
                "grad_norm": float(grad_norm),
                "weight_decay": decay,
                "tokens_per_s": tokens * self.dist.world / (time.perf_counter() - started),
            }
            history["train"].append(row)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.4f}", tok_s=f"{row['tokens_per_s']:.0f}", epoch=cursor.epoch)
            if (p.eval_every and step % p.eval_every == 0) or step == self.total_steps:
                self._validate(step, history)
                self.stopped_early = step < self.total_steps and self.best.should_stop(p.early_stop_patience)
            last = step == stop or self.stopped_early
            if self.dist.main and live is not None and (step % p.log_every == 0 or last):
                self._log_live(live, history, row)
            if step % p.checkpoint_every == 0 or last:
                self._save(step, cursor, history)
            if self.dist.main and (step % p.monitor_every == 0 or last):
                render_monitor(history, self.title, self.args.plot)
        bar.close()
        if self.stopped_early:
            log.info("early_stop step=%d best_step=%s patience=%d", step, self.best.step, p.early_stop_patience)
        if self.dist.main:
            self._finish(step, history, live)
        return 0

    def _mean(self, value: float) -> float:
        if self.dist.world == 1:
            return value
        tensor = torch.tensor([value], device=self.device)
        torch.distributed.all_reduce(tensor)
        return float(tensor) / self.dist.world

    def _validate(self, step: int, history: dict) -> None:
        """Validation and recall loss (same code, training/validation.py); a new best recall
        loss keeps a copy of the weights."""
        batches = self.params.max_eval_batches
        loss = validation_loss(self.raw_model, self.val_data, self.batch, self.device, batches)
        recall = validation_loss(self.raw_model, self.recall_data, self.batch, self.device, batches)
        row: dict = {"step": step}
        if loss is not None:
            row |= {"val_loss": loss, "val_ppl": float(np.exp(min(loss, 50)))}
        if recall is not None:
            row["recall_loss"] = recall
            self.best.update(step, recall, self.raw_model, keep_weights=self.dist.main)
        if len(row) > 1:
            history["val"].append(row)
            log.info("step=%d val_loss=%s recall_loss=%s best_step=%s", step, loss, recall, self.best.step)

    # --- outputs -------------------------------------------------------------------------

    def _live(self, history: dict):
        """A fresh DVCLive folder replaying the history up to the resume point, so a killed
        and resumed run never shows steps twice."""
        if not self.dist.main:
            return None
        live = open_live(self.args.live)
        live.log_params(recorded_params(self.params))
        for row in history["train"]:
            if row["step"] % self.params.log_every == 0:
                self._log_live(live, history, row)
        return live

    def _log_live(self, live, history: dict, row: dict) -> None:
        live.step = row["step"]
        # tokens/s stays in the log and the progress bar: a timing figure in these git-tracked
        # files would make every rerun look like a change (git status after make repro).
        for key in ("loss", "lr", "grad_norm", "weight_decay"):
            live.log_metric(f"train/{key}", row[key])
        val = [v for v in history["val"] if v["step"] == row["step"]]
        if val and "val_loss" in val[-1]:
            live.log_metric("val/loss", val[-1]["val_loss"])
        if val and "recall_loss" in val[-1]:
            live.log_metric("recall/loss", val[-1]["recall_loss"])
        live.next_step()

    def _finish(self, step: int, history: dict, live) -> None:
        """model.pt (the best step on recall, or the last), metrics, monitor, DVCLive."""
        out: Path = self.args.out
        out.mkdir(parents=True, exist_ok=True)
        best = self.params.select_best and self.best.weights is not None
        with atomic_write(out / "model.pt", "wb") as handle:
            torch.save(
                {
                    "config": self.config.to_dict(),
                    "model": self.best.weights if best else self.raw_model.state_dict(),
                    "step": self.best.step if best else step,
                    "selected": "best_recall_loss" if best else "last_step",
                    "last_step": step,
                    "recall_loss": self.best.loss if best else None,
                    "run_id": self.identity.run_id,
                    "variant": self.params.variant,
                    "params": recorded_params(self.params),
                },
                handle,
            )
        train = history["train"]
        val = [v for v in history["val"] if "val_loss" in v]
        recall = [v for v in history["val"] if "recall_loss" in v]
        metrics = {
            "step": step,
            "total_steps": self.total_steps,
            "params": self.raw_model.num_params(),
            "loss": train[-1]["loss"] if train else None,
            "val_loss": val[-1]["val_loss"] if val else None,
            "val_ppl": val[-1]["val_ppl"] if val else None,
            "recall_loss": recall[-1]["recall_loss"] if recall else None,
            "best_step": self.best.step,
            "best_recall_loss": self.best.loss,
            "model_step": self.best.step if best else step,
            "stopped_early": self.stopped_early,
            "run_id": self.identity.run_id,
            "batch_size": self.batch,
            "grad_accum": self.accum,
            "world_size": self.dist.world,
            "effective_batch_size": self.batch * self.accum * self.dist.world,
        }
        if self.pretrain_steps:
            metrics |= {"pretrain_steps": self.pretrain_steps, "raw_contexts": self.phases["pretrain"].contexts}
        write_json(self.args.metrics, metrics)
        render_monitor(history, self.title, self.args.plot)
        if live is not None:
            live.end()
        log.info(
            "done step=%d loss=%s val_loss=%s recall_loss=%s model_step=%s",
            step, metrics["loss"], metrics["val_loss"], metrics["recall_loss"], metrics["model_step"],
        )  # fmt: skip
