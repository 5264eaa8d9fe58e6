"""Inference: load a trained GPT, generate tokens with a KV cache, answer a ChatML conversation.

`load_model` takes any of the project's model files: the trainer's `data/model/model.pt`, a
training checkpoint `step-XXXXXXXX.pt`, a folder holding either, or an exported folder
(`config.json` + `model.safetensors`, our GPTConfig fields or a transformers GPT-2 config).
Torch files are read with `weights_only=True`, so a model file cannot run code when loaded.

`generate` streams token ids. With `use_cache` (the default) the prompt runs once and each
new token attends to the cached keys/values (model/kv_cache.py, `GPT.forward_decode`);
without it every step reruns the whole sequence through `GPT.forward`, the reference the
tests compare against. Prompt + generated tokens never exceed the model's context_length:
generation stops there (see `generate`).

`answer` / `stream_answer` render the conversation as training did (dataset/chatml.py) and
generate until `<|im_end|>`.

Example:
    model, config = load_model("data/model/model.pt")
    tok = Tokenizer.load("data/tokenizer")
    text, stopped = answer(model, tok, [{"role": "user", "content": "Who led Army Group Centre?"}])
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import fields
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from common.devices import ModelLoadError
from dataset.chatml import ChatEncoder
from dataset.tokenizer import Tokenizer
from model.config import GPTConfig
from model.gpt import GPT
from model.hf_import import config_from_hf_gpt2, state_dict_from_hf_gpt2

WEIGHTS_FILE = "model.safetensors"  # an exported folder: config.json + model.safetensors + tokenizer/
CONFIG_FILE = "config.json"
TRAINED_FILE = "model.pt"  # what the train stage writes into its --out folder
SHAPE_FIELDS = ("vocab_size", "context_length", "n_layer", "n_head", "n_embd")  # no safe default for these
DEFAULT_MAX_NEW_TOKENS = 256
# Why generation ended: the generator's return value (`reason = yield from generate(...)`).
STOPPED, MAX_NEW_TOKENS, CONTEXT_FULL = "stop", "max_new_tokens", "context_length"
REPLACEMENT_CHAR = "\ufffd"  # what a partial UTF-8 sequence of byte pieces decodes to, for now
# Training checkpoints also hold numpy RNG states; allowing just these keeps weights_only loading.
NUMPY_GLOBALS = [np._core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


# --- loading ---------------------------------------------------------------------------------


def load_model(
    path: str | Path, device: str | torch.device = "cpu", attention_backend: str = "auto"
) -> tuple[GPT, GPTConfig]:
    """The GPT stored at `path` (model.pt, step-*.pt, or a folder with either or an export), in eval mode."""
    path = Path(path)
    if path.is_dir():
        if (path / WEIGHTS_FILE).is_file():
            source, (config, state) = path / WEIGHTS_FILE, read_export(path)
        elif (path / TRAINED_FILE).is_file():
            source, (config, state) = path / TRAINED_FILE, read_torch_model(path / TRAINED_FILE)
        else:
            raise ModelLoadError(f"{path}: no {WEIGHTS_FILE} (exported model) or {TRAINED_FILE} (trained model) in it")
    elif path.is_file():
        source, (config, state) = path, read_torch_model(path)
    else:
        raise ModelLoadError(f"{path}: model not found (train one with `dvc repro`, or pass another path)")
    model = GPT(config, attention_backend=attention_backend)
    # a model saved through torch.compile or DDP wrappers carries their prefixes
    state = {name.removeprefix("_orig_mod.").removeprefix("module."): value for name, value in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelLoadError(f"{source}: weights do not fit its config {config}: {exc}") from exc
    return model.to(device).eval(), config


def read_torch_model(path: Path) -> tuple[GPTConfig, dict[str, Tensor]]:
    """(config, state_dict) of a train-stage model.pt or a training checkpoint."""
    try:
        with torch.serialization.safe_globals(NUMPY_GLOBALS):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError/EOFError/UnpicklingError/... on torn files
        raise ModelLoadError(
            f"{path}: unreadable model file (truncated or corrupt?): {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict) or "config" not in state:
        raise ModelLoadError(f"{path}: not a ww2lm model or checkpoint (expected a dict with 'model' and 'config')")
    return config_from_dict(state["config"], path), state["model"]


def read_export(folder: Path) -> tuple[GPTConfig, dict[str, Tensor]]:
    """(config, state_dict) of an exported folder: config.json + model.safetensors."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{config_path}: missing (an exported model needs it beside {WEIGHTS_FILE})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{config_path}: not valid JSON ({exc})") from exc
    try:
        state = load_file(weights_path, device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ModelLoadError(f"{weights_path}: unreadable safetensors file (truncated or corrupt?): {exc}") from exc
    if isinstance(raw, dict) and raw.get("model_type") == "gpt2":  # exported in transformers' GPT-2 layout
        from transformers import GPT2Config  # slow import, needed only for GPT-2 exports

        try:
            return config_from_hf_gpt2(GPT2Config(**raw)), state_dict_from_hf_gpt2(state)
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"{folder}: GPT-2 export our GPT cannot load: {exc}") from exc
    return config_from_dict(raw, config_path), state


def config_from_dict(raw: object, source: Path) -> GPTConfig:
    """GPTConfig from a saved dict (top level or under "config"); other keys such as a variant name are ignored."""
    if isinstance(raw, dict) and not set(SHAPE_FIELDS) <= raw.keys() and isinstance(raw.get("config"), dict):
        raw = raw["config"]
    if not isinstance(raw, dict) or (missing := [k for k in SHAPE_FIELDS if k not in raw]):
        what = f"missing {', '.join(missing)}" if isinstance(raw, dict) else f"got {type(raw).__name__}"
        raise ModelLoadError(f"{source}: no usable model config ({what})")
    try:
        return GPTConfig(**{f.name: raw[f.name] for f in fields(GPTConfig) if f.name in raw})
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"{source}: invalid model config: {exc}") from exc


# --- generation ------------------------------------------------------------------------------


def generate(
    model: GPT,
    prompt_ids: Sequence[int],
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    stop_ids: Iterable[int] = frozenset(),
    seed: int | None = None,
    use_cache: bool = True,
) -> Generator[int, None, str]:
    """Stream the ids the model generates after `prompt_ids`, one at a time.

    Greedy when temperature == 0; otherwise samples from softmax(logits / temperature),
    restricted to the `top_k` likeliest tokens (0 = all) and then to the smallest set whose
    probability reaches `top_p` (nucleus sampling, Holtzman et al. 2019), with a torch.Generator
    seeded by `seed` (None = fresh entropy). Stops before yielding a `stop_ids` token, after
    `max_new_tokens`, or when prompt + generated tokens fill the context (at most
    context_length - len(prompt) tokens: the finished sequence still fits in one context, as a
    training record did). The generator returns why it stopped: STOPPED, MAX_NEW_TOKENS or
    CONTEXT_FULL. Arguments are checked at the call, not at the first `next`.
    """
    context = model.config.context_length
    if not prompt_ids:
        raise ValueError("prompt_ids is empty: the model needs at least one token to continue")
    if len(prompt_ids) > context:
        raise ValueError(f"prompt of {len(prompt_ids)} tokens exceeds context_length={context}")
    if bad := [i for i in prompt_ids if not 0 <= i < model.config.vocab_size]:
        raise ValueError(f"prompt ids outside the vocabulary (size {model.config.vocab_size}): {bad[:5]}")
    if max_new_tokens < 0 or temperature < 0 or top_k < 0 or not 0 < top_p <= 1:
        raise ValueError(
            f"need max_new_tokens >= 0, temperature >= 0, top_k >= 0, 0 < top_p <= 1; got "
            f"{max_new_tokens}, {temperature}, {top_k}, {top_p}"
        )
    device = model.lm_head.weight.device
    generator = None
    if temperature > 0:
        generator = torch.Generator(device=device)
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
    pick = partial(next_token, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
    return _generate(model, list(prompt_ids), max_new_tokens, pick, frozenset(stop_ids), use_cache)


@torch.inference_mode()  # torch re-enters the mode around each `next`, so the caller's grad mode is untouched
def _generate(
    model: GPT,
    prompt: list[int],
    max_new_tokens: int,
    pick: Callable[[Tensor], int],
    stop_ids: frozenset,
    use_cache: bool,
) -> Generator[int, None, str]:
    budget = min(max_new_tokens, model.config.context_length - len(prompt))
    if budget <= 0:
        return MAX_NEW_TOKENS if max_new_tokens == 0 else CONTEXT_FULL
    device = model.lm_head.weight.device
    ids = torch.tensor([prompt], dtype=torch.long, device=device)  # (1, P)
    if use_cache:
        # the last generated token is never fed back, so the cache needs P + budget - 1 positions
        cache = model.new_cache(batch_size=1, max_length=len(prompt) + budget - 1)
        logits = model.forward_decode(ids, cache, last_only=True)[0, -1]  # (vocab,)
    else:
        logits = model(ids)[0][0, -1]
    for step in range(budget):
        token = pick(logits)
        if token in stop_ids:
            return STOPPED
        yield token
        if step + 1 == budget:
            break
        new = torch.tensor([[token]], dtype=torch.long, device=device)  # (1, 1)
        if use_cache:
            logits = model.forward_decode(new, cache)[0, -1]
        else:
            ids = torch.cat([ids, new], dim=1)  # (1, P + step + 1): the whole sequence again
            logits = model(ids)[0][0, -1]
    return MAX_NEW_TOKENS if budget == max_new_tokens else CONTEXT_FULL


def next_token(
    logits: Tensor, temperature: float, top_k: int = 0, top_p: float = 1.0, generator: torch.Generator | None = None
) -> int:
    """The next id from one position's logits (vocab,): argmax at temperature 0, else a sample."""
    if temperature == 0:
        return int(logits.argmax())
    logits = logits.float() / temperature
    if 0 < top_k < logits.numel():
        values, indices = torch.topk(logits, top_k)
        logits = torch.full_like(logits, float("-inf")).scatter(0, indices, values)  # exactly k survive, ties too
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = sorted_logits.softmax(-1)
        # drop a token once the likelier ones already reach top_p; the likeliest is always kept
        drop = probs.cumsum(-1) - probs >= top_p
        logits = logits.index_fill(0, order[drop], float("-inf"))
    return int(torch.multinomial(logits.softmax(-1), 1, generator=generator))


# --- chat ------------------------------------------------------------------------------------


def answer(
    model: GPT, tokenizer: Tokenizer, messages: Sequence[dict], max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, **sampling
) -> tuple[str, bool]:
    """(the assistant's reply to `messages`, whether it ended with <|im_end|>); `sampling` as `generate`."""
    tokens = generate(
        model, chat_prompt(tokenizer, messages), max_new_tokens, stop_ids={tokenizer.im_end_id}, **sampling
    )
    ids: list[int] = []
    while True:
        try:
            ids.append(next(tokens))
        except StopIteration as stop:
            return tokenizer.decode(ids), stop.value == STOPPED


def stream_answer(
    model: GPT, tokenizer: Tokenizer, messages: Sequence[dict], max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, **sampling
) -> Generator[str, None, bool]:
    """`answer` as text pieces while they are generated; returns whether it ended with <|im_end|>.

    The pieces concatenate to `answer`'s text (same arguments, same seed)."""
    tokens = generate(
        model, chat_prompt(tokenizer, messages), max_new_tokens, stop_ids={tokenizer.im_end_id}, **sampling
    )
    reason = None

    def recorded() -> Iterator[int]:
        nonlocal reason
        reason = yield from tokens

    yield from incremental_text(tokenizer, recorded())
    return reason == STOPPED


def chat_prompt(tokenizer: Tokenizer, messages: Sequence[dict]) -> list[int]:
    """Ids of dataset.chatml.render_prompt(messages), encoded segment-wise as training was."""
    return ChatEncoder(tokenizer).encode_prompt(messages)


def incremental_text(tokenizer: Tokenizer, token_ids: Iterable[int]) -> Iterator[str]:
    """Text pieces for a stream of ids whose concatenation is `tokenizer.decode(all ids)`.

    One id may be a lone byte of a multi-byte character (byte fallback), so pieces are not
    decoded one by one: the growing id list is decoded and the new suffix yielded, holding back
    trailing U+FFFD (an incomplete character) until the bytes after it arrive or the stream ends.
    """
    ids: list[int] = []
    emitted = ""
    for token in token_ids:
        ids.append(token)
        stable = tokenizer.decode(ids).rstrip(REPLACEMENT_CHAR)
        # decoding only ever extends a prefix here; if it did not, emitting would be unsafe, so wait
        if len(stable) > len(emitted) and stable.startswith(emitted):
            yield stable[len(emitted) :]
            emitted = stable
    text = tokenizer.decode(ids)
    if len(text) > len(emitted) and text.startswith(emitted):
        yield text[len(emitted) :]
