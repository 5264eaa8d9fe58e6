"""Tests of the transformers generator backend on a tiny chat model built here, offline.

The fixture trains a byte-level BPE tokenizer with ChatML tags and a 2-layer GPT-2 that
memorises a few WWII question/answer conversations (a few seconds on a CPU), so greedy
replies are exact strings that end in <|im_end|>: batching, padding and truncation can be
asserted on real text instead of random-weight junk.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: never the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import dataclasses  # noqa: E402
import shutil  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast  # noqa: E402

from common.devices import ModelLoadError  # noqa: E402
from common.params import ParamsError, section_from_mapping  # noqa: E402
from llm.base import LLMError  # noqa: E402
from llm.params import TransformersParams  # noqa: E402
from llm.transformers_backend import TransformersChat  # noqa: E402

pytestmark = pytest.mark.slow  # builds and loads transformers models: left out of make test-fast

CHATML = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    # Qwen3's switch: with thinking off, the template pre-fills an empty think block.
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)

# (question, memorised reply); prompts of very different lengths so a batch needs left padding.
CONVERSATIONS = [
    ("Who surrendered at Stalingrad?", "Paulus surrendered the 6th Army."),
    ("When did Operation Overlord begin?", "On 6 June 1944."),
    (
        "In which month of 1943 did the Battle of Stalingrad end, after the encirclement of the "
        "German 6th Army by the Red Army during Operation Uranus?",
        "February.",
    ),
    ("Who led Britain?", "<think>\nChurchill, from May 1940.\n</think>\n\nWinston Churchill."),
    ("Say nothing.", "<think>\nNothing to say.\n</think>\n\n"),
]
ANSWERED = CONVERSATIONS[:3]


def user(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def build_tokenizer(texts: list[str], chat_template: str | None) -> PreTrainedTokenizerFast:
    """A byte-level BPE like Qwen's: any text round-trips, ChatML tags are single tokens."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=chat_template
    )
    tokenizer.add_tokens(["<think>", "</think>"])  # ordinary (not special) tokens, as in Qwen3
    return tokenizer


def train_tiny_gpt(tokenizer: PreTrainedTokenizerFast, texts: list[str]) -> GPT2LMHeadModel:
    """Overfit a 2-layer GPT-2 on the conversations so greedy decoding replays them."""
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=256,
        n_embd=64,
        n_layer=2,
        n_head=2,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = GPT2LMHeadModel(config)
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    model.train()
    for _ in range(150):
        loss = model(**batch, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05, f"tiny model did not memorise its conversations (loss {loss.item():.3f})"
    model.eval()
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.eos_token_id
    )
    return model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny-ww2-chat"
    tokenizer = build_tokenizer([q + " " + a for q, a in CONVERSATIONS], CHATML)
    tokenizer.padding_side = "right"  # training only; the backend pads left
    texts = [
        tokenizer.apply_chat_template(user(q), add_generation_prompt=True, tokenize=False) + a + "<|im_end|>"
        for q, a in CONVERSATIONS
    ]
    train_tiny_gpt(tokenizer, texts).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def make_params(model_dir: Path, **overrides) -> TransformersParams:
    params = TransformersParams(
        model_path=str(model_dir),
        batch_size=8,
        batch_wait_ms=200.0,
        max_new_tokens=24,
        temperature=0.0,
        top_p=1.0,
        device="cpu",
        dtype="auto",
        enable_thinking=True,
        seed=0,
    )
    return dataclasses.replace(params, **overrides)


@pytest.fixture(scope="module")
def backend(model_dir):
    with TransformersChat(make_params(model_dir)) as chat:
        yield chat


def outcome(chat: TransformersChat, question: str) -> tuple[str, str | None]:
    """("ok", reply) or (error reason, raw text): comparable across batched and one-at-a-time."""
    try:
        return "ok", chat.chat(user(question))
    except LLMError as exc:
        return exc.reason, exc.raw


def test_loads_and_answers(backend):
    assert backend.name == "transformers:tiny-ww2-chat"
    assert backend.device.type == "cpu" and backend.dtype == torch.float32  # auto on CPU
    for question, answer in ANSWERED:
        assert backend.chat(user(question)) == answer


def test_think_block_is_stripped_and_think_only_is_empty(backend):
    assert backend.chat(user("Who led Britain?")) == "Winston Churchill."
    with pytest.raises(LLMError) as err:
        backend.chat(user("Say nothing."))
    assert err.value.reason == "empty_reply"
    assert "<think>" in err.value.raw


def test_concurrent_calls_are_batched_and_match_one_at_a_time(model_dir):
    # Every memorised question plus unseen ones (junk of any length, maybe truncated): the batch
    # mixes lengths and outcomes, and must reproduce each exactly, raw text of failures included.
    questions = [q for q, _ in CONVERSATIONS] + ["Who", "Tell me about Dunkirk and the evacuation of 1940"]
    with TransformersChat(make_params(model_dir, batch_size=1)) as single:
        expected = [outcome(single, q) for q in questions]
        assert single.generate_calls == len(questions)
    with TransformersChat(make_params(model_dir, batch_size=len(questions), batch_wait_ms=500.0)) as batched:
        with ThreadPoolExecutor(max_workers=len(questions)) as pool:
            got = list(pool.map(lambda q: outcome(batched, q), questions))
        assert batched.generate_calls < len(questions)
    assert got == expected
    assert [reason for reason, _ in got[: len(CONVERSATIONS)]] == ["ok", "ok", "ok", "ok", "empty_reply"]


def test_reply_without_eos_is_truncated(model_dir):
    with TransformersChat(make_params(model_dir, max_new_tokens=3)) as chat, pytest.raises(LLMError) as err:
        chat.chat(user(ANSWERED[0][0]))
    assert err.value.reason == "truncated"
    assert err.value.raw and ANSWERED[0][1].startswith(err.value.raw)


def test_generate_error_fails_the_batch_but_not_the_worker(backend, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(backend.model, "generate", broken)
    with pytest.raises(LLMError) as err:
        backend.chat(user(ANSWERED[0][0]))
    assert err.value.reason == "generate_error" and "out of memory" in str(err.value)
    monkeypatch.undo()
    assert backend.chat(user(ANSWERED[0][0])) == ANSWERED[0][1]


def test_enable_thinking_reaches_the_template(backend, model_dir):
    with TransformersChat(make_params(model_dir, enable_thinking=False)) as no_think:
        assert no_think.render_prompt(user("Hi")).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert backend.render_prompt(user("Hi")) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_sampling_is_reproducible_with_a_seed(model_dir):
    def sample(seed: int) -> list[tuple[str, str | None]]:
        with TransformersChat(make_params(model_dir, temperature=1.5, top_p=0.95, seed=seed, max_new_tokens=8)) as chat:
            return [outcome(chat, "Who") for _ in range(3)]

    assert sample(1) == sample(1)


def test_fingerprint_has_what_changes_outputs_only(backend, model_dir):
    fingerprint = backend.fingerprint()
    assert fingerprint["model"] == "tiny-ww2-chat" and len(fingerprint["model_files_sha256"]) == 16
    assert {"temperature", "top_p", "max_new_tokens", "enable_thinking", "seed"} <= set(fingerprint)
    assert not {"device", "batch_size", "batch_wait_ms", "dtype"} & set(fingerprint)
    with TransformersChat(make_params(model_dir, batch_size=2, batch_wait_ms=0.0)) as other:
        assert other.fingerprint() == fingerprint
    with TransformersChat(make_params(model_dir, max_new_tokens=7)) as other:
        assert other.fingerprint() != fingerprint


def test_closed_backend_refuses_calls(model_dir):
    chat = TransformersChat(make_params(model_dir))
    chat.close()
    chat.close()  # idempotent
    with pytest.raises(LLMError) as err:
        chat.chat(user("Hi"))
    assert err.value.reason == "closed"


def test_missing_model_dir_names_the_path(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError, match="no-such-model: model directory not found"):
        TransformersChat(make_params(missing))
    with pytest.raises(ModelLoadError, match="no config.json"):
        TransformersChat(make_params(tmp_path))


def test_tokenizer_without_chat_template_is_refused(model_dir, tmp_path):
    base = tmp_path / "base-model"
    base.mkdir()
    shutil.copy(model_dir / "config.json", base)
    build_tokenizer([q for q, _ in CONVERSATIONS], chat_template=None).save_pretrained(base)
    with pytest.raises(ModelLoadError, match=f"{base}: the tokenizer has no chat template"):
        TransformersChat(make_params(base))


@pytest.mark.parametrize(
    "field, value",
    [
        ("batch_size", 0),
        ("max_new_tokens", 0),
        ("temperature", -1.0),
        ("top_p", 0.0),
        ("device", "tpu"),
        ("dtype", "float16"),
    ],
)
def test_bad_params_fail_with_the_key_name(model_dir, field, value):
    raw = dataclasses.asdict(make_params(model_dir)) | {field: value}
    with pytest.raises(ParamsError, match=rf"^params\.yaml:generate\.transformers\.{field}: "):
        section_from_mapping(raw, TransformersParams, "params.yaml:generate.transformers")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; compares CPU and GPU greedy replies")
def test_cuda_greedy_matches_cpu(backend, model_dir):
    questions = [q for q, _ in ANSWERED]
    with TransformersChat(make_params(model_dir, device="cuda", dtype="float32")) as gpu:
        assert gpu.device.type == "cuda"
        assert [gpu.chat(user(q)) for q in questions] == [backend.chat(user(q)) for q in questions]
    with TransformersChat(make_params(model_dir, device="auto")) as auto:
        assert auto.device.type == "cuda" and auto.dtype == torch.bfloat16
        # bf16 rounding can move junk text, not the memorised replies' wide margins.
        assert [auto.chat(user(q)) for q in questions] == [a for _, a in ANSWERED]


def test_the_generate_stage_runs_on_the_transformers_backend(model_dir, tmp_path):
    """windows × a prompt type → the local model → the parser → the work store. The tiny model
    only knows its memorised replies, which are not in the Question/Answer format, so every
    item lands in failed/ with the model's raw reply: the whole path, end to end."""
    import json

    from stages import generate
    from synth.work_store import WorkStore
    from tests.conftest import write_params

    (tmp_path / "types.yaml").write_text(
        "types:\n  - name: who\n    family: question\n    kind: qa\n    format: qa\n"
        f"    prompt: {json.dumps(CONVERSATIONS[0][0])}\n"
    )
    windows = [
        {
            "id": f"w{i}",
            "article": "Battle of Stalingrad",
            "section": "",
            "start": 0,
            "sentences": ["Paulus."],
            "text": "Paulus.",
        }
        for i in range(3)
    ]
    (tmp_path / "windows.jsonl").write_text("".join(json.dumps(w) + "\n" for w in windows))
    settings = {f"generate.transformers.{k}": v for k, v in dataclasses.asdict(make_params(model_dir)).items()}
    params = write_params(
        tmp_path,
        {"generate.backend": "transformers", "generate.concurrency": 3, "generate.samples_per_type": 1, **settings},
    )
    code = generate.main(
        [
            "--params", str(params), "--windows", str(tmp_path / "windows.jsonl"),
            "--types", str(tmp_path / "types.yaml"), "--store", str(tmp_path / "store"),
            "--out", str(tmp_path / "generated.jsonl"), "--metrics", str(tmp_path / "generate.json"),
        ]
    )  # fmt: skip
    assert code == 1  # every item failed, and the stage says so
    failed = list(WorkStore(str(tmp_path / "store")).iter_failed())
    assert [(f["reason"], f["raw"]) for f in failed] == [("parse_missing_question", CONVERSATIONS[0][1])] * 3
    assert {f["generator"] for f in failed} == {f"transformers:{model_dir.name}"}
    assert json.loads((tmp_path / "generate.json").read_text())["failed"] == {"parse_missing_question": 3}
