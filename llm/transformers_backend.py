"""The `transformers` generator backend: a local chat model directory, batched on one device.

`TransformersChat(params)` loads a model directory (e.g. a downloaded Qwen2.5-7B-Instruct or
Qwen3-4B) with `AutoTokenizer` / `AutoModelForCausalLM`, offline (`local_files_only=True`),
and answers `chat(messages)` calls from many threads at once. Calls are queued; one
background worker thread takes up to `batch_size` of them (waiting at most `batch_wait_ms`
for the batch to fill), runs a single `model.generate` on the left-padded batch and hands each
caller its own reply, so N requests in flight cost about one forward pass per token instead
of N.

Prompts are rendered by the model's own chat template (`enable_thinking` is passed to it, for
Qwen3; other templates ignore it). A reply is post-processed like every other backend's
(`llm.base.strip_think`); a reply that ran into `max_new_tokens` is an
LLMError("truncated"), an empty one LLMError("empty_reply").

Example:
    backend = TransformersChat(TransformersParams(model_path="/models/Qwen3-4B", batch_size=16,
        batch_wait_ms=50, max_new_tokens=512, temperature=0.0, top_p=1.0, device="auto",
        dtype="auto", enable_thinking=False, seed=0))
    backend.chat([{"role": "user", "content": "Who commanded the 6th Army at Stalingrad?"}])
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from common.devices import ModelLoadError, pick_device
from common.params import ParamsError
from llm.base import ChatBackend, LLMError, strip_think
from llm.params import TransformersParams

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# Small files that change what the model outputs; hashed into the fingerprint. The weights
# themselves are not hashed (gigabytes): a different checkpoint must live under another name.
FINGERPRINT_FILES = ("config.json", "generation_config.json")


def resolve_device(device: str, key: str = "transformers.device") -> torch.device:
    """common.devices.pick_device, failing as a ModelLoadError: no model can load on a
    device torch does not see."""
    try:
        return pick_device(device, key)
    except ParamsError as exc:
        raise ModelLoadError(str(exc)) from exc


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype != "auto":
        return DTYPES[dtype]
    # bf16 halves memory and is what Qwen checkpoints ship in; CPUs are slow and lossy in it.
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def model_files_hash(model_dir: Path, chat_template: str) -> str:
    """sha256 over the small files that shape outputs, plus the chat template in use."""
    digest = hashlib.sha256()
    for name in FINGERPRINT_FILES:
        path = model_dir / name
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
        digest.update(b"\0")
    digest.update(chat_template.encode())
    return digest.hexdigest()[:16]


@dataclass
class _Request:
    prompt: str
    future: Future


class TransformersChat(ChatBackend):
    """A ChatBackend on a local transformers model, with dynamic batching (see module doc).
    `device_key` names the params key of `params.device` in errors."""

    def __init__(self, params: TransformersParams, device_key: str = "transformers.device"):
        self.params = params
        self.model_dir = Path(params.model_path)
        self.name = f"transformers:{os.path.basename(os.path.normpath(params.model_path))}"
        self.device = resolve_device(params.device, device_key)
        self.dtype = resolve_dtype(params.dtype, self.device)
        self.tokenizer, self.model = self._load()
        self.eos_ids = self._eos_ids()
        self.generation_config = self._generation_config()
        self._model_hash = model_files_hash(self.model_dir, self.tokenizer.chat_template)

        self.generate_calls = 0  # model.generate calls so far; written by the worker only
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._lock = threading.Lock()  # orders "closed?" checks against enqueues
        self._closed = False
        self._worker = threading.Thread(target=self._work, name=f"{self.name}-batcher", daemon=True)
        self._worker.start()
        log.info("backend=%s device=%s dtype=%s batch_size=%d", self.name, self.device, self.dtype, params.batch_size)

    # -- loading ----------------------------------------------------------------------------

    def _load(self) -> tuple[Any, Any]:
        # Imported here so the other backends never pay for importing transformers.
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = self.model_dir
        if not path.is_dir():
            raise ModelLoadError(f"{path}: model directory not found (transformers.model_path)")
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path}: not a model directory (no config.json)")
        # The tokenizer first: a directory without a chat template fails in a second, not
        # after loading gigabytes of weights.
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except Exception as exc:  # transformers raises OSError/ValueError/KeyError variously
            raise ModelLoadError(f"{path}: cannot load the tokenizer: {exc}") from exc
        if not getattr(tokenizer, "chat_template", None):
            raise ModelLoadError(
                f"{path}: the tokenizer has no chat template; a base (non-instruct) model cannot be used as a chat model"
            )
        # Decoder-only generation appends new tokens on the right, so prompts must end flush
        # right: pad on the left and let the attention mask (and mask-derived position ids) skip it.
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ModelLoadError(f"{path}: the tokenizer has neither a pad nor an eos token")
            tokenizer.pad_token = tokenizer.eos_token
        try:
            # Not device_map: transformers needs `accelerate` for it, which we do not depend on.
            model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=self.dtype)
        except Exception as exc:
            raise ModelLoadError(f"{path}: cannot load the model: {exc}") from exc
        model.to(self.device)
        model.eval()
        return tokenizer, model

    def _eos_ids(self) -> frozenset[int]:
        """Every id that ends a reply: the generation config's (Qwen lists <|im_end|> and
        <|endoftext|>) and the tokenizer's eos."""
        ids = self.model.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [] if ids is None else [ids])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        if not ids:
            raise ModelLoadError(f"{self.model_dir}: no eos token id in the generation config or the tokenizer")
        return frozenset(ids)

    def _generation_config(self) -> Any:
        # Start from the model's own generation config so its author's settings we do not
        # override (e.g. Qwen's top_k, repetition_penalty) still apply; they are in the fingerprint.
        config = copy.deepcopy(self.model.generation_config)
        sampling = self.params.temperature > 0
        config.update(
            max_new_tokens=self.params.max_new_tokens,
            do_sample=sampling,
            eos_token_id=sorted(self.eos_ids),
            pad_token_id=self.tokenizer.pad_token_id,
        )
        if sampling:
            config.update(temperature=self.params.temperature, top_p=self.params.top_p)
        else:
            # Unset, so greedy decoding does not warn about sampling flags it ignores.
            config.update(temperature=None, top_p=None, top_k=None)
        return config

    # -- the ChatBackend interface ----------------------------------------------------------

    def render_prompt(self, messages: list[dict[str, str]]) -> str:
        try:
            return self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False, enable_thinking=self.params.enable_thinking
            )
        except Exception as exc:  # a Jinja error: e.g. a role the template rejects
            raise LLMError("bad_messages", f"chat template failed: {exc}") from exc

    def chat(self, messages: list[dict[str, str]]) -> str:
        """The assistant's reply; blocks until the batch holding this request is done."""
        request = _Request(self.render_prompt(messages), Future())
        with self._lock:
            if self._closed:
                raise LLMError("closed", f"{self.name} is closed")
            self._queue.put(request)
        return request.future.result()

    def fingerprint(self) -> dict:
        # Device and batch size are left out: greedy outputs do not depend on them (up to
        # float rounding), and a rerun on other hardware must reuse the stored work.
        return {
            "backend": "transformers",
            "model": os.path.basename(os.path.normpath(self.params.model_path)),
            "model_files_sha256": self._model_hash,
            "temperature": self.params.temperature,
            "top_p": self.params.top_p,
            "max_new_tokens": self.params.max_new_tokens,
            "enable_thinking": self.params.enable_thinking,
            "seed": self.params.seed,
        }

    def close(self) -> None:
        """Serve what is queued, then stop the worker. Later chat() calls raise LLMError("closed")."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)  # after every queued request, so those are still answered
        self._worker.join()

    def __enter__(self) -> TransformersChat:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the batching worker ----------------------------------------------------------------

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._run_batch(batch)

    def _next_batch(self) -> list[_Request] | None:
        """Block for one request, then gather more until batch_size or batch_wait_ms; None = stop."""
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        deadline = time.monotonic() + self.params.batch_wait_ms / 1000
        while len(batch) < self.params.batch_size:
            remaining = deadline - time.monotonic()
            try:
                # Past the deadline, still take requests already waiting: joining this batch is free.
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:  # closing: answer this batch, stop on the next get
                self._queue.put(None)
                break
            batch.append(item)
        return batch

    def _run_batch(self, batch: list[_Request]) -> None:
        """Answer every request of the batch; nothing raised here may kill the worker."""
        try:
            rows = self._generate([request.prompt for request in batch])
        except Exception as exc:  # CUDA OOM, a bad input...: these callers fail, later ones run
            log.exception("generate failed for a batch of %d", len(batch))
            for request in batch:
                request.future.set_exception(LLMError("generate_error", f"{type(exc).__name__}: {exc}"))
            return
        for request, (token_ids, stopped) in zip(batch, rows, strict=True):
            try:
                request.future.set_result(self._reply(token_ids, stopped))
            except LLMError as exc:
                request.future.set_exception(exc)
            except Exception as exc:  # a decode failure is that one reply's, not the batch's
                request.future.set_exception(LLMError("generate_error", f"{type(exc).__name__}: {exc}"))

    def _generate(self, prompts: list[str]) -> list[tuple[list[int], bool]]:
        """One generate call; per prompt, the new token ids up to (not incl.) eos and whether eos came."""
        # add_special_tokens=False: the chat template already wrote any BOS the model wants.
        inputs = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        seed = self.params.seed + self.generate_calls
        self.generate_calls += 1
        with torch.inference_mode(), self._seeded(seed):
            output = self.model.generate(**inputs, generation_config=self.generation_config)
        new_tokens = output[:, inputs["input_ids"].shape[1] :].tolist()  # (B, <= max_new_tokens)
        rows = []
        for token_ids in new_tokens:
            end = next((i for i, token in enumerate(token_ids) if token in self.eos_ids), None)
            rows.append((token_ids if end is None else token_ids[:end], end is not None))
        return rows

    @contextlib.contextmanager
    def _seeded(self, seed: int) -> Iterator[None]:
        """Sampling draws from torch's global RNG (generate takes no Generator): seed it per
        batch inside fork_rng so the caller's RNG state is left as it was. Reproducible for the
        same request order and batch composition; greedy needs none of it."""
        if self.params.temperature == 0:
            yield
            return
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    def _reply(self, token_ids: list[int], stopped: bool) -> str:
        raw = self.tokenizer.decode(token_ids, skip_special_tokens=True)
        if not stopped:
            raise LLMError("truncated", f"no eos within max_new_tokens={self.params.max_new_tokens}", raw=raw)
        text = strip_think(raw)
        if not text:
            raise LLMError("empty_reply", raw=raw)
        return text
