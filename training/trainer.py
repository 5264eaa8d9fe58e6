"""The trainer behind stages/train.py: set-up, resume, steps, checkpoints, monitors, outputs."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from common.devices import pick_device
from common.files import atomic_write, write_json
from dataset.packed_files import DataError, load_packed, packed_width
from dataset.tokenizer import Tokenizer
from model.gpt import GPT, set_weight_decay
from model.variants import load_variant
from training.batches import Cursor, make_batch
from training.checkpoint import capture_rng, restore_rng, resume_state, save_checkpoint
from training.distributed import probe_batch_size, setup_distributed
from training.monitor import render_monitor
from training.params import TrainParams
from training.precision import autocast
from training.schedule import accumulation_steps, learning_rate, weight_decay
from training.validation import validation_loss

log = logging.getLogger("train")


class Trainer:
    def __init__(self, params: TrainParams, args) -> None:
        self.params, self.args = params, args
        if not (params.batch_size == "auto" or (isinstance(params.batch_size, int) and params.batch_size > 0)):
            raise ValueError(f"train.batch_size: expected a positive int or 'auto', got {params.batch_size!r}")
        self.dist = setup_distributed("cuda" if params.device != "cpu" and torch.cuda.is_available() else "cpu")
        self.device = pick_device(params.device, "train.device", self.dist.local_rank)
        torch.manual_seed(params.seed)

        self.train_data = load_packed(args.packed, "train")
        if self.train_data is None or len(self.train_data["tokens"]) == 0:
            raise DataError(f"{args.packed}: no packed training contexts (run the pack stage)")
        self.val_data = load_packed(args.packed, "val")
        self.width = packed_width(args.packed)
        self.config = load_variant(params.variant, vocab_size=Tokenizer.load(args.tokenizer).vocab_size)
        if self.width > self.config.context_length:
            raise ValueError(
                f"pack.context_length={self.width} exceeds the {params.variant} variant's "
                f"context_length={self.config.context_length}"
            )
        self.raw_model = GPT(self.config, attention_backend=params.attention).to(self.device)
        self.batch = self._physical_batch()
        self.accum = accumulation_steps(params.effective_batch_size, self.batch * self.dist.world)
        n_contexts = len(self.train_data["tokens"])
        per_step = self.batch * self.accum * self.dist.world
        self.total_steps = params.max_steps or max(1, int(np.ceil(params.epochs * n_contexts / per_step)))
        self.optimizer = self.raw_model.configure_optimizer(
            params.weight_decay, params.lr, (params.beta1, params.beta2)
        )
        self.model = self._wrap(self.raw_model)
        self.run_dir = args.checkpoints / params.run_id()
        self.title = (
            f"{params.variant} ({self.raw_model.num_params() / 1e6:.2f}M) | lr {params.lr:g}->{params.min_lr:g} "
            f"warmup {params.warmup_steps} | batch {self.batch}x{self.accum}x{self.dist.world}="
            f"{per_step} | wd {params.weight_decay:g}->{params.weight_decay_late:g}@{params.wd_switch_epochs}ep"
            f" | ctx {self.width} | vocab {self.config.vocab_size} | {self.device.type}"
        )

    def _physical_batch(self) -> int:
        if self.params.batch_size != "auto":
            return int(self.params.batch_size)
        if self.device.type != "cuda":
            raise ValueError("train.batch_size: 'auto' probes GPU memory and needs CUDA; set a number on the CPU")
        batch = probe_batch_size(
            self.raw_model, self.device, self.width, self.params.vram_headroom_gb, self.params.max_auto_batch
        )
        log.info("auto_batch=%d headroom_gb=%.1f", batch, self.params.vram_headroom_gb)
        return batch

    def _wrap(self, model: GPT):
        if self.params.compile:
            model = torch.compile(model)
        if self.dist.world > 1:
            ids = [self.dist.local_rank] if self.device.type == "cuda" else None
            model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        return model

    # --- state ---------------------------------------------------------------------------

    def _restore(self) -> tuple[int, Cursor, dict]:
        state = resume_state(self.run_dir, self.args.resume_from)
        if state is None:
            return 0, Cursor(0, 0), {"train": [], "val": [], "judge": []}
        self.raw_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        restore_rng(state["rng"])
        log.info(
            "resumed step=%d epoch=%d position=%d from=%s",
            state["step"],
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
            "rng": capture_rng(),
            "history": history,
            "config": self.config.to_dict(),
            "variant": self.params.variant,
            "params": dataclasses.asdict(self.params),
            "total_steps": self.total_steps,
            "title": self.title,
        }
        path = save_checkpoint(self.run_dir, step, state, self.params.keep_checkpoints)
        log.info("checkpoint step=%d path=%s", step, path)

    # --- loop ----------------------------------------------------------------------------

    def run(self) -> int:
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
        n_contexts = len(self.train_data["tokens"])
        bar = tqdm(total=stop, initial=step, desc="train", unit="step", disable=not self.dist.main)
        while step < stop:
            started = time.perf_counter()
            lr = learning_rate(step, self.total_steps, p.warmup_steps, p.lr, p.min_lr)
            decay = weight_decay(cursor.epoch, p.wd_switch_epochs, p.weight_decay, p.weight_decay_late)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            set_weight_decay(self.optimizer, decay)
            loss_sum, tokens = 0.0, 0
            for micro in range(self.accum):
                rows = cursor.take(n_contexts, self.batch * self.dist.world, p.seed)
                rows = rows[self.dist.rank * self.batch : (self.dist.rank + 1) * self.batch]
                data = make_batch(self.train_data, rows, self.device)
                sync = self.dist.world == 1 or micro == self.accum - 1
                with contextlib.nullcontext() if sync else self.model.no_sync(), autocast(self.device):
                    _, loss = self.model(**data.as_kwargs())
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
            last = step == stop
            if (p.eval_every and step % p.eval_every == 0) or step == self.total_steps:
                self._validate(step, history)
            if self.dist.main and live is not None and (step % p.log_every == 0 or last):
                self._log_live(live, history, row)
            if step % p.checkpoint_every == 0 or last:
                self._save(step, cursor, history)
            if self.dist.main and (step % p.monitor_every == 0 or last):
                render_monitor(history, self.title, self.args.plot)
        bar.close()
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
        loss = validation_loss(self.raw_model, self.val_data, self.batch, self.device, self.params.max_eval_batches)
        if loss is not None:
            history["val"].append({"step": step, "val_loss": loss, "val_ppl": float(np.exp(min(loss, 50)))})
            log.info("step=%d val_loss=%.4f", step, loss)

    # --- outputs -------------------------------------------------------------------------

    def _live(self, history: dict):
        """A fresh DVCLive folder replaying the history up to the resume point, so a killed
        and resumed run never shows steps twice."""
        if not self.dist.main:
            return None
        from dvclive import Live

        live = Live(dir=str(self.args.live), save_dvc_exp=False, dvcyaml=False)
        live.log_params(dataclasses.asdict(self.params))
        for row in history["train"]:
            if row["step"] % self.params.log_every == 0:
                self._log_live(live, history, row)
        return live

    def _log_live(self, live, history: dict, row: dict) -> None:
        live.step = row["step"]
        for key in ("loss", "lr", "grad_norm", "tokens_per_s", "weight_decay"):
            live.log_metric(f"train/{key}", row[key])
        val = [v for v in history["val"] if v["step"] == row["step"]]
        if val:
            live.log_metric("val/loss", val[-1]["val_loss"])
        live.next_step()

    def _finish(self, step: int, history: dict, live) -> None:
        out: Path = self.args.out
        out.mkdir(parents=True, exist_ok=True)
        with atomic_write(out / "model.pt", "wb") as handle:
            torch.save(
                {
                    "config": self.config.to_dict(),
                    "model": self.raw_model.state_dict(),
                    "step": step,
                    "variant": self.params.variant,
                    "params": dataclasses.asdict(self.params),
                },
                handle,
            )
        train, val = history["train"], history["val"]
        metrics = {
            "step": step,
            "total_steps": self.total_steps,
            "params": self.raw_model.num_params(),
            "loss": train[-1]["loss"] if train else None,
            "val_loss": val[-1]["val_loss"] if val else None,
            "val_ppl": val[-1]["val_ppl"] if val else None,
            "batch_size": self.batch,
            "grad_accum": self.accum,
            "world_size": self.dist.world,
            "effective_batch_size": self.batch * self.accum * self.dist.world,
        }
        write_json(self.args.metrics, metrics)
        render_monitor(history, self.title, self.args.plot)
        if live is not None:
            live.end()
        log.info("done step=%d loss=%s val_loss=%s", step, metrics["loss"], metrics["val_loss"])
