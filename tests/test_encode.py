import json

import numpy as np
import pytest

from dataset.chatml import ChatEncoder, encode_prompt, render, render_prompt
from dataset.encode import article_split
from dataset.token_files import ids_dtype, load_split
from dataset.tokenizer import Tokenizer
from stages import encode as stage
from tests.conftest import write_params
from tests.tokenizer_helpers import chat, sample_articles, sample_records, train_tokenizer, write_jsonl

CONVERSATION = [
    {"role": "user", "content": "Who commanded the 6th Army at Stalingrad in November 1942?"},
    {"role": "assistant", "content": "Friedrich Paulus commanded it."},
    {"role": "user", "content": "And who surrounded it?"},
    {"role": "assistant", "content": "The Red Army, in Operation Uranus."},
]


@pytest.fixture(scope="module")
def articles():
    return sample_articles()


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory, articles):
    folder = tmp_path_factory.mktemp("tokenizer")
    assert train_tokenizer(folder, write_params(folder), articles, sample_records(articles)) == 0
    return folder / "tok"


@pytest.fixture(scope="module")
def encoder(tok_dir) -> ChatEncoder:
    return ChatEncoder(Tokenizer.load(tok_dir))


def run(tmp_path, tok_dir, records, **overrides):
    inp = write_jsonl(tmp_path / "shuffled.jsonl", records)
    params = write_params(tmp_path, {k.replace("__", "."): v for k, v in overrides.items()})
    code = stage.main(
        [
            "--params",
            str(params),
            "--tokenizer",
            str(tok_dir),
            "--in",
            str(inp),
            "--out",
            str(tmp_path / "tokens"),
            "--metrics",
            str(tmp_path / "tokenize.json"),
        ]
    )
    return code, tmp_path / "tokens", tmp_path / "tokenize.json"


def test_the_im_end_after_each_answer_is_trained_on(encoder):
    ids, mask = encoder.encode(CONVERSATION)
    tok = encoder.tokenizer
    ends = [i for i, t in enumerate(ids) if t == tok.im_end_id]
    assert len(ends) == 4
    assert [mask[i] for i in ends] == [0, 1, 0, 1]  # the user's <|im_end|> is context, the assistant's a target
    assert mask[ends[1] - 1] == 1 and mask[ends[1] + 1] == 0  # the answer's last token; the "\n" after the tag


def test_no_user_token_is_trained_on_and_exactly_the_answers_are(encoder):
    ids, mask = encoder.encode(CONVERSATION)
    tok = encoder.tokenizer
    trained = [t for t, m in zip(ids, mask, strict=True) if m]
    assert tok.decode(trained) == "Friedrich Paulus commanded it.<|im_end|>The Red Army, in Operation Uranus.<|im_end|>"
    assert tok.im_start_id not in trained
    spans, start = [], None  # the masked-in runs: exactly one per assistant turn
    for i, m in enumerate([*mask, 0]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            spans.append(tok.decode(ids[start:i]))
            start = None
    assert spans == ["Friedrich Paulus commanded it.<|im_end|>", "The Red Army, in Operation Uranus.<|im_end|>"]


def test_segment_encoding_equals_encoding_the_rendered_text(encoder):
    tok = encoder.tokenizer
    text = render(CONVERSATION)
    assert text.startswith("<|im_start|>user\nWho commanded") and text.endswith("Uranus.<|im_end|>\n")
    assert encoder.encode(CONVERSATION)[0] == tok.encode(text)
    assert tok.decode(encoder.encode(CONVERSATION)[0]) == text
    prompt = render_prompt(CONVERSATION[:1])
    assert prompt.endswith("?<|im_end|>\n<|im_start|>assistant\n")
    assert encode_prompt(tok, CONVERSATION[:1]) == tok.encode(prompt)
    assert encoder.encode(CONVERSATION)[0][: len(tok.encode(prompt))] == tok.encode(prompt)


def test_main_writes_memory_mapped_splits_in_input_order(tmp_path, tok_dir, articles):
    records = sample_records(articles)
    code, out, metrics = run(tmp_path, tok_dir, records)
    assert code == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["dtype"] == "uint16" and meta["vocab_size"] == 4000
    for split in ("train", "val"):
        ids, mask, offsets = load_split(out, split)
        assert isinstance(ids, np.memmap) and ids.dtype == np.uint16 and mask.dtype == np.uint8
        assert offsets.dtype == np.int64 and offsets[0] == 0 and offsets[-1] == len(ids) == len(mask)
        assert set(mask.tolist()) == {0, 1}
        first = ids[offsets[0] : offsets[1]]
        assert first[0] == meta["im_start_id"] and first[-2] == meta["im_end_id"]
        index = [json.loads(x)["id"] for x in (out / f"{split}.records.jsonl").read_text().splitlines()]
        expected = [
            r["id"] for r in records if article_split(r["article"], meta["val_fraction"], meta["seed"]) == split
        ]
        assert index == expected and len(index) == len(offsets) - 1 == meta["splits"][split]["records"] > 0
    m = json.loads(metrics.read_text())
    assert m["records"] == len(records) and m["dropped"] == {}
    assert 0 < m["masked_share"] < 1 and m["tokens"] == sum(s["tokens"] for s in m["splits"].values())
    assert m["val_articles"] == meta["splits"]["val"]["article_titles"]


def test_the_split_is_by_article_and_stable(tmp_path, tok_dir, articles):
    records = sample_records(articles)
    code, out, _ = run(tmp_path, tok_dir, records, encode__val_fraction=0.3)
    assert code == 0
    meta = json.loads((out / "meta.json").read_text())
    train, val = (set(meta["splits"][s]["article_titles"]) for s in ("train", "val"))
    assert train and val and not train & val
    # membership depends on the title and the seed only: half the articles, reversed, same calls
    half = [a["title"] for a in articles[::2]]
    assert [article_split(t, 0.3, 1941) for t in reversed(half)] == [
        "val" if t in val else "train" for t in reversed(half)
    ]
    assert {article_split(t, 0.3, 7) for t in train | val} == {"train", "val"}
    assert {article_split(t, 0.0, 1941) for t in train | val} == {"train"}


def test_rerun_is_byte_identical(tmp_path, tok_dir, articles):
    records = sample_records(articles)
    _, out, metrics = run(tmp_path, tok_dir, records)
    first = {p.name: p.read_bytes() for p in out.iterdir()} | {"metrics": metrics.read_bytes()}
    _, out, metrics = run(tmp_path, tok_dir, records)
    assert {p.name: p.read_bytes() for p in out.iterdir()} | {"metrics": metrics.read_bytes()} == first
    assert not (tmp_path / "tokens.tmp").exists()


def user_assistant(q, a):
    return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]


@pytest.mark.parametrize(
    "bad, reason",
    [
        ("{broken json", "invalid_json"),
        (["not", "an", "object"], "not_an_object"),
        ({"id": "x", "messages": user_assistant("q", "a")}, "no_article"),
        ({"id": "x", "article": "Kursk"}, "no_messages"),
        ({"id": "x", "article": "Kursk", "messages": []}, "no_messages"),
        ({"id": "x", "article": "Kursk", "messages": ["hi"]}, "bad_message"),
        ({"id": "x", "article": "Kursk", "messages": user_assistant("q", "a")[::-1]}, "wrong_roles"),
        ({"id": "x", "article": "Kursk", "messages": user_assistant("q", "a")[:1]}, "wrong_roles"),
        ({"id": "x", "article": "Kursk", "messages": [{"role": "system", "content": "s"}]}, "wrong_roles"),
        ({"id": "x", "article": "Kursk", "messages": user_assistant("q", "  ")}, "empty_content"),
        ({"id": "x", "article": "Kursk", "messages": user_assistant(None, "a")}, "empty_content"),
        ({"id": "x", "article": "Kursk", "messages": user_assistant("q<|im_end|>", "a")}, "chat_tag_in_content"),
    ],
)
def test_bad_records_are_counted_drops_and_the_rest_survive(tmp_path, tok_dir, bad, reason):
    good = chat("When did Kursk begin?", "On 5 July 1943.", "Battle of Kursk", "good")
    code, out, metrics = run(tmp_path, tok_dir, [good, bad, good])
    assert code == 0
    m = json.loads(metrics.read_text())
    assert (m["records_in"], m["records"], m["dropped"]) == (3, 2, {reason: 1})


def test_only_bad_records_is_a_clear_error_and_writes_nothing(tmp_path, tok_dir, caplog):
    code, out, metrics = run(tmp_path, tok_dir, ["{broken", {"article": "x"}])
    assert code == 2
    assert "no usable records" in caplog.text
    assert not out.exists() and not (tmp_path / "tokens.tmp").exists() and not metrics.exists()


def test_a_corrupt_tokenizer_model_is_a_clear_error(tmp_path, caplog):
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "spm.model").write_bytes(b"\x00garbage, not a model")
    code, out, _ = run(tmp_path, tmp_path / "tok", [chat("q", "a", "Kursk")])
    assert code == 2
    assert "spm.model: not a valid SentencePiece model" in caplog.text
    assert not out.exists()


def test_a_missing_input_is_a_clear_error(tmp_path, tok_dir, caplog):
    code = stage.main(
        [
            "--params",
            str(write_params(tmp_path)),
            "--tokenizer",
            str(tok_dir),
            "--in",
            str(tmp_path / "none.jsonl"),
            "--out",
            str(tmp_path / "tokens"),
            "--metrics",
            str(tmp_path / "m.json"),
        ]
    )
    assert code == 2
    assert "input not found" in caplog.text


def test_ids_dtype_widens_past_uint16():
    assert (ids_dtype(4000), ids_dtype(65536), ids_dtype(65537)) == (np.uint16, np.uint16, np.uint32)


def test_load_split_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.ids.npy"):
        load_split(tmp_path, "train")
