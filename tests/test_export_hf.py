"""`tools/export --format transformers`: the folder loads offline with AutoModelForCausalLM /
AutoTokenizer, tokenizes as our SentencePiece model does, and apply_chat_template + greedy
generate give our tokens; our own loaders read the folder too."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from dataset.hf_tokenizer import to_hf_tokenizer
from dataset.tokenizer import Tokenizer, read_manifest
from dataset.tokenizer_training import article_lines
from model.inference import answer, chat_prompt, generate, load_model
from tests.conftest import write_params
from tests.inference_helpers import TOKENIZER_VOCAB, save_trained_format, tiny_gpt
from tests.tokenizer_helpers import sample_articles, sample_records, train_tokenizer
from tools import chat, export

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]  # ~10 s: transformers' imports

CONVERSATION = [
    {"role": "user", "content": "Who commanded the 6th Army at Stalingrad in November 1942?"},
    {"role": "assistant", "content": "Friedrich Paulus."},
    {"role": "user", "content": "And who surrounded it?"},
]
ODD_TEXTS = ["  double  space ", "日本語 and 🙂", "in June 1944,", "<|im_start|>user\nHi<|im_end|>\n", "▁x", ""]


def tokenizer_folder(root, model_type: str):
    params = write_params(root, {"tokenizer.vocab_size": TOKENIZER_VOCAB, "tokenizer.model_type": model_type})
    articles = sample_articles()[:3]
    assert train_tokenizer(root, params, articles, sample_records(articles)) == 0
    return root / "tok"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    tokenizer = tokenizer_folder(root, "bpe")
    model = tiny_gpt(vocab_size=Tokenizer.load(tokenizer).vocab_size, context_length=96)
    model_path = save_trained_format(model, root / "data/model/model.pt")
    argv = ["--model", str(model_path), "--tokenizer", str(tokenizer), "--params", str(root / "params.yaml"),
            "--out", str(root / "models"), "--name", "hf", "--format", "transformers", "--repo", str(root)]  # fmt: skip
    assert export.main(argv) == 0
    return {"folder": root / "models/hf", "model": model, "tokenizer": Tokenizer.load(tokenizer)}


@pytest.fixture(scope="module")
def loaded(exported):
    folder = exported["folder"]
    hf_tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    hf_model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    return hf_tokenizer, hf_model


def test_the_folder_holds_both_layouts_files(exported):
    names = {p.name for p in exported["folder"].iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert {"generation_config.json", "tokenizer", "provenance.json", "MODEL_CARD.md"} <= names
    config = json.loads((exported["folder"] / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["tie_word_embeddings"] is False
    assert (config["variant"], config["step"]) == ("test", 0)
    assert json.loads((exported["folder"] / "provenance.json").read_text())["format"] == "transformers"


def test_chat_template_gives_our_prompt_ids(exported, loaded):
    hf_tokenizer, _ = loaded
    ids = hf_tokenizer.apply_chat_template(CONVERSATION, add_generation_prompt=True, tokenize=True, return_dict=False)
    assert list(ids) == chat_prompt(exported["tokenizer"], CONVERSATION)
    assert hf_tokenizer.eos_token_id == exported["tokenizer"].im_end_id


def test_greedy_generate_gives_our_tokens(exported, loaded):
    hf_tokenizer, hf_model = loaded
    prompt = chat_prompt(exported["tokenizer"], CONVERSATION)
    budget = exported["model"].config.context_length - len(prompt)  # transformers cannot run past the context
    ours = list(generate(exported["model"], prompt, budget, stop_ids={exported["tokenizer"].im_end_id}))
    with torch.no_grad():
        out = hf_model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=budget)
    theirs = out[0, len(prompt) :].tolist()
    assert len(ours) > 5
    assert theirs in (ours, [*ours, hf_tokenizer.eos_token_id])  # transformers keeps the stop token


def test_our_loaders_read_the_transformers_folder(exported, capsys):
    model, config = load_model(exported["folder"])
    idx = torch.randint(config.vocab_size, (1, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(model(idx)[0], exported["model"](idx)[0], atol=1e-5, rtol=0)
    question = [CONVERSATION[0]]
    assert chat.main(["--model", str(exported["folder"]), "--prompt", question[0]["content"], "--temperature", "0",
                      "--max-new-tokens", "10"]) == 0  # fmt: skip
    assert capsys.readouterr().out == answer(exported["model"], exported["tokenizer"], question, 10)[0] + "\n"


@pytest.mark.parametrize("model_type", ["bpe", "unigram"])
def test_the_converted_tokenizer_encodes_as_sentencepiece(tmp_path, model_type):
    ours = Tokenizer.load(tokenizer_folder(tmp_path, model_type))
    theirs = to_hf_tokenizer(ours, read_manifest(tmp_path / "tok")["model_type"])
    lines = [line for article in sample_articles() for line in article_lines(article)]
    for text in [*lines, *ODD_TEXTS]:
        ids = theirs.encode(text, add_special_tokens=False)
        assert ids == ours.encode(text), text[:60]
        assert theirs.decode(ids) == ours.decode(ids)


def test_transformers_format_needs_the_tokenizer_folder(exported, tmp_path, caplog):
    argv = ["--model", str(exported["folder"]), "--tokenizer", str(exported["folder"] / "tokenizer/spm.model"),
            "--out", str(tmp_path), "--format", "transformers", "--params", str(exported["folder"] / "config.json")]  # fmt: skip
    assert export.main(argv) == 2
    assert "needs the tokenizer folder" in caplog.text and not list(tmp_path.iterdir())


def test_gguf_export_reads_back_with_the_gguf_reader(exported, tmp_path):
    from gguf import GGUFReader, TokenType

    model, tokenizer = exported["model"], exported["tokenizer"]
    source = exported["folder"].parent.parent / "data/model/model.pt"
    argv = ["--model", str(source), "--tokenizer", str(exported["folder"] / "tokenizer"), "--params",
            str(exported["folder"] / "params.yaml"), "--out", str(tmp_path), "--name", "gg", "--format", "gguf"]  # fmt: skip
    assert export.main(argv) == 0
    assert load_model(tmp_path / "gg")[1] == model.config  # our files are there too
    reader = GGUFReader(tmp_path / "gg/model.gguf")

    def field(key: str):
        return reader.fields[key].contents()

    assert field("general.architecture") == "gpt2" and field("gpt2.block_count") == 2
    assert (field("gpt2.context_length"), field("gpt2.embedding_length"), field("gpt2.attention.head_count")) == (
        96,
        32,
        2,
    )
    assert field("tokenizer.ggml.model") == "llama" and field("tokenizer.ggml.add_space_prefix") is False
    assert field("tokenizer.ggml.tokens") == [tokenizer.id_to_piece(i) for i in range(tokenizer.vocab_size)]
    types = field("tokenizer.ggml.token_type")
    assert types[tokenizer.im_start_id] == types[tokenizer.im_end_id] == TokenType.USER_DEFINED
    assert types[tokenizer.sp.bos_id()] == TokenType.CONTROL and types[tokenizer.sp.unk_id()] == TokenType.UNKNOWN
    assert field("tokenizer.ggml.eos_token_id") == tokenizer.im_end_id and "<|im_start|>" in field(
        "tokenizer.chat_template"
    )
    tensors = {t.name: t for t in reader.tensors}
    assert len(tensors) == len(model.state_dict())
    ours = model.state_dict()
    for gguf_name, our_name in [("token_embd.weight", "transformer.wte.weight"), ("output.weight", "lm_head.weight"),
                                ("blk.1.attn_qkv.weight", "transformer.h.1.attn.c_attn.weight"),
                                ("blk.0.ffn_down.bias", "transformer.h.0.mlp.c_proj.bias")]:  # fmt: skip
        data = tensors[gguf_name].data.reshape(ours[our_name].shape)
        assert torch.equal(torch.from_numpy(data.copy()), ours[our_name]), gguf_name
