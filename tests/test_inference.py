"""Inference: the KV cache against the full forward, generation limits and sampling, model loading."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from model.hf_import import to_hf_gpt2
from model.inference import (
    CONTEXT_FULL,
    MAX_NEW_TOKENS,
    STOPPED,
    ModelLoadError,
    answer,
    generate,
    incremental_text,
    load_model,
    stream_answer,
)
from tests.inference_helpers import build_tokenizer, save_trained_format, tiny_gpt
from training.checkpoint import capture_rng, save_checkpoint

PROMPT = [5, 17, 42, 8, 91, 3, 3, 60]
QUESTION = [{"role": "user", "content": "Who commanded the 6th Army at Stalingrad?"}]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return build_tokenizer(tmp_path_factory.mktemp("tokenizer"))


def run(tokens) -> tuple[list[int], str]:
    """Every id of a `generate` stream and the reason it returned."""
    ids = []
    while True:
        try:
            ids.append(next(tokens))
        except StopIteration as stop:
            return ids, stop.value


def logits_of(model, idx):
    with torch.no_grad():
        return model(idx)[0]


# --- the cache -------------------------------------------------------------------------------


@pytest.mark.parametrize("chunks", [[20], [7, 13], [1] * 20], ids=["prefill", "two_chunks", "token_by_token"])
def test_cached_logits_equal_the_full_forward(chunks):
    model = tiny_gpt()
    idx = torch.randint(0, 97, (2, 40), generator=torch.Generator().manual_seed(1))
    cache = model.new_cache(batch_size=2, max_length=40)
    with torch.no_grad():
        pieces, start = [], 0
        for size in [*chunks, *[1] * 20]:  # the prompt as given, then 20 one-token steps
            pieces.append(model.forward_decode(idx[:, start : start + size], cache))
            start += size
    assert cache.length == 40
    assert (torch.cat(pieces, dim=1) - logits_of(model, idx)).abs().max() <= 1e-5


def test_cache_refuses_what_does_not_fit():
    model = tiny_gpt(context_length=16)
    cache = model.new_cache(max_length=10)
    with torch.no_grad():
        model.forward_decode(torch.zeros(1, 10, dtype=torch.long), cache)
        with pytest.raises(ValueError, match="max_length=10"):
            model.forward_decode(torch.zeros(1, 1, dtype=torch.long), cache)
        with pytest.raises(ValueError, match="context_length=16"):
            model.forward_decode(torch.zeros(1, 17, dtype=torch.long), model.new_cache())


def test_decoding_leaves_no_trace_in_the_model():
    model = tiny_gpt()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    run(generate(model, PROMPT, 10))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert set(before) == set(model.state_dict())  # no cache buffers registered on the model


def test_decoding_follows_changed_weights():
    model, other = tiny_gpt(), tiny_gpt(seed=1)
    run(generate(model, PROMPT, 5))  # the decode path now holds its copies of model's weights
    model.load_state_dict(other.state_dict())  # in place, as a resume or an optimizer step would
    assert run(generate(model, PROMPT, 20)) == run(generate(other, PROMPT, 20, use_cache=False))


def test_forward_decode_runs_in_grad_mode_too():  # inference only, but a caller may forget no_grad
    model = tiny_gpt()
    idx = torch.tensor([PROMPT])
    assert (model.forward_decode(idx, model.new_cache()) - logits_of(model, idx)).abs().max() <= 1e-5


# --- generate --------------------------------------------------------------------------------


def test_cached_and_uncached_greedy_decoding_agree():
    model = tiny_gpt()
    cached, reason = run(generate(model, PROMPT, 30))
    uncached, _ = run(generate(model, PROMPT, 30, use_cache=False))
    assert cached == uncached and len(cached) == 30 and reason == MAX_NEW_TOKENS
    assert len(set(cached)) > 3  # the weights are random enough not to repeat one token


def test_greedy_is_the_argmax_of_the_full_forward():
    model = tiny_gpt()
    tokens, _ = run(generate(model, PROMPT, 5))
    seq = list(PROMPT)
    for token in tokens:
        assert token == int(logits_of(model, torch.tensor([seq]))[0, -1].argmax())
        seq.append(token)


def test_stops_before_a_stop_id():
    model = tiny_gpt()
    free, _ = run(generate(model, PROMPT, 20))
    stop = free[6]
    tokens, reason = run(generate(model, PROMPT, 20, stop_ids={stop}))
    assert tokens == free[: free.index(stop)] and reason == STOPPED


def test_max_new_tokens_and_the_context_limit():
    model = tiny_gpt(context_length=48)
    assert run(generate(model, PROMPT, 0)) == ([], MAX_NEW_TOKENS)
    assert len(run(generate(model, PROMPT, 7))[0]) == 7
    for use_cache in (True, False):  # prompt + generated never exceed the 48 positions
        tokens, reason = run(generate(model, list(range(45)), 10, use_cache=use_cache))
        assert len(tokens) == 3 and reason == CONTEXT_FULL
    assert run(generate(model, list(range(48)), 10)) == ([], CONTEXT_FULL)
    with pytest.raises(ValueError, match="exceeds context_length=48"):
        generate(model, list(range(49)), 1)  # raised at the call, before the first next()


@pytest.mark.parametrize(
    "bad",
    [{"prompt_ids": []}, {"prompt_ids": [97]}, {"temperature": -1.0}, {"top_p": 0.0}, {"top_k": -1}],
    ids=["empty", "outside_vocab", "temperature", "top_p", "top_k"],
)
def test_bad_arguments_are_refused(bad):
    with pytest.raises(ValueError):
        generate(tiny_gpt(), **{"prompt_ids": PROMPT, "max_new_tokens": 3, **bad})


def test_sampling_is_reproducible_with_a_seed():
    model = tiny_gpt()
    first = run(generate(model, PROMPT, 30, temperature=1.5, seed=7))[0]
    assert first == run(generate(model, PROMPT, 30, temperature=1.5, seed=7))[0]
    assert first == run(generate(model, PROMPT, 30, temperature=1.5, seed=7, use_cache=False))[0]
    assert first != run(generate(model, PROMPT, 30, temperature=1.5, seed=8))[0]
    assert first != run(generate(model, PROMPT, 30))[0]  # sampling at 1.5 wanders off the greedy path


@pytest.mark.parametrize("narrowing", [{"top_k": 1}, {"top_p": 1e-6}], ids=["top_k_1", "tiny_top_p"])
def test_a_single_candidate_is_greedy(narrowing):
    model = tiny_gpt()
    greedy = run(generate(model, PROMPT, 20))[0]
    assert run(generate(model, PROMPT, 20, temperature=2.0, seed=3, **narrowing))[0] == greedy


def test_the_callers_grad_mode_survives_a_paused_generator():
    tokens = generate(tiny_gpt(), PROMPT, 5)
    next(tokens)
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()


# --- answer and stream_answer ----------------------------------------------------------------


def always(model, token: int):
    """`model` with a constant final LayerNorm output (its bias, all ones) and `token`'s head row
    set to ones: that token wins every step by a wide margin."""
    with torch.no_grad():
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.fill_(1.0)
        model.lm_head.weight[token] = 1.0
    return model


def test_answer_stops_at_im_end_or_max_new_tokens(tokenizer):
    model = tiny_gpt(vocab_size=tokenizer.vocab_size, context_length=64)
    assert answer(always(model, tokenizer.im_end_id), tokenizer, QUESTION) == ("", True)
    year = tokenizer.encode(" 1944")  # years are forced single pieces
    assert len(year) == 1
    model = always(tiny_gpt(vocab_size=tokenizer.vocab_size, context_length=64), year[0])
    assert answer(model, tokenizer, QUESTION, 4) == (" 1944" * 4, False)


@pytest.mark.parametrize("sampling", [{}, {"temperature": 1.0, "seed": 5}], ids=["greedy", "sampled"])
def test_stream_answer_pieces_concatenate_to_answer(tokenizer, sampling):
    model = tiny_gpt(vocab_size=tokenizer.vocab_size, context_length=128)
    text, stopped = answer(model, tokenizer, QUESTION, 40, **sampling)
    pieces = stream_answer(model, tokenizer, QUESTION, 40, **sampling)
    assert "".join(pieces) == text and text


def test_incremental_text_holds_back_partial_characters(tokenizer):
    text = "Kraków, 1944 ✓ — Ōkinawa"
    ids = tokenizer.encode(text)
    pieces = list(incremental_text(tokenizer, ids))
    assert "".join(pieces) == text
    assert all("\ufffd" not in piece for piece in pieces)
    assert len(pieces) > 3  # streamed, not one piece at the end


# --- load_model ------------------------------------------------------------------------------


def assert_same_model(loaded, original):
    idx = torch.tensor([PROMPT])
    assert loaded.config == original.config and not loaded.training
    assert torch.equal(logits_of(loaded, idx), logits_of(original, idx))


def test_load_the_trained_model_file_and_its_folder(tmp_path):
    original = tiny_gpt()
    path = save_trained_format(original, tmp_path / "model" / "model.pt")
    for where in (path, path.parent):
        model, config = load_model(where)
        assert config == original.config
        assert_same_model(model, original)


def test_load_a_training_checkpoint(tmp_path):
    original = tiny_gpt()
    optimizer = original.configure_optimizer(weight_decay=0.1, lr=1e-3)
    state = {"model": original.state_dict(), "optimizer": optimizer.state_dict(), "step": 3, "epoch": 0,
             "epoch_position": 3, "rng": capture_rng(torch.device("cpu")), "history": {"train": [], "val": []},
             "config": original.config.to_dict(), "variant": "test", "params": {}}  # fmt: skip
    path = save_checkpoint(tmp_path / "run", 3, state, keep=2)  # numpy RNG states inside, as the trainer's
    assert_same_model(load_model(path)[0], original)


def test_load_exported_folders(tmp_path):
    original = tiny_gpt()
    ours = tmp_path / "ours"
    ours.mkdir()
    save_file(original.state_dict(), ours / "model.safetensors")
    (ours / "config.json").write_text(json.dumps({"format": "ww2lm", "config": original.config.to_dict()}))
    assert_same_model(load_model(ours)[0], original)
    to_hf_gpt2(original).save_pretrained(tmp_path / "hf")  # transformers' GPT-2 layout
    assert_same_model(load_model(tmp_path / "hf")[0], original)


def test_bad_model_files_are_clear_errors(tmp_path):
    path = save_trained_format(tiny_gpt(), tmp_path / "model.pt")
    torn = tmp_path / "torn.pt"
    torn.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match="torn.pt: unreadable model file"):
        load_model(torn)
    with pytest.raises(ModelLoadError, match="missing.pt: model not found"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="empty: no model.safetensors"):
        load_model(tmp_path / "empty")
    torch.save({"model": {}}, tmp_path / "foreign.pt")
    with pytest.raises(ModelLoadError, match="foreign.pt: not a ww2lm model"):
        load_model(tmp_path / "foreign.pt")
    torch.save(
        {"model": tiny_gpt(vocab_size=50).state_dict(), "config": tiny_gpt().config.to_dict()}, tmp_path / "x.pt"
    )
    with pytest.raises(ModelLoadError, match="x.pt: weights do not fit"):
        load_model(tmp_path / "x.pt")
    export = tmp_path / "export"
    export.mkdir()
    (export / "model.safetensors").write_bytes(b"\x00" * 16)
    (export / "config.json").write_text(json.dumps({"n_layer": 2}))
    with pytest.raises(ModelLoadError, match="model.safetensors: unreadable safetensors"):
        load_model(export)
    save_file(tiny_gpt().state_dict(), export / "model.safetensors")
    with pytest.raises(ModelLoadError, match="config.json: no usable model config .missing vocab_size"):
        load_model(export)
