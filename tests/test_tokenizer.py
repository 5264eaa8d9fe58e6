import io
import json

import pytest
import sentencepiece as spm

from dataset.tokenizer import IM_END, IM_START, Tokenizer, TokenizerError
from dataset.tokenizer_training import MONTHS, forced_symbols, forced_terms, read_terms, sample_lines, split_long
from stages import tokenizer as stage
from tests.conftest import ROOT, write_params
from tests.tokenizer_helpers import sample_articles, sample_records, train_tokenizer

TERMS = forced_terms(read_terms((ROOT / "data" / "military_terms.txt").read_text().splitlines()), 1900, 1950)
ODD_TEXTS = [
    "  two leading spaces, two  inside and a trailing one ",
    "tab\there\nnewline\n\nblank line\r\nCRLF",
    "Zhukov \u00e9\u00e8 na\u00efve Dönitz Göring Fallschirmjäger Łódź Kraków",
    "combining: e\u0301 and NFKC-unfriendly: \ufb01 \u2460 ＴＯＫＹＯ \u00a0nbsp\u00a0",
    "日本の真珠湾攻撃 1941 and Сталинград and العلمين",
    "emoji 😀🎖️🇺🇸 and a zero-width\u200bjoiner",
]


@pytest.fixture(scope="module")
def articles():
    return sample_articles()


@pytest.fixture(scope="module")
def tok(tmp_path_factory, articles) -> Tokenizer:
    folder = tmp_path_factory.mktemp("tokenizer")
    assert train_tokenizer(folder, write_params(folder), articles, sample_records(articles)) == 0
    return Tokenizer.load(folder / "tok")


def test_the_sample_corpus_is_what_the_default_vocab_is_sized_for(articles, tok):
    assert 150_000 < sum(len(s["text"]) for a in articles for s in a["sections"]) < 400_000
    assert tok.vocab_size == 4000
    assert (tok.im_start_id, tok.im_end_id, tok.eos_id, tok.pad_id, tok.unk_id) == (4, 5, 5, 3, 0)


def test_in_june_1944_is_four_tokens(tok):
    assert tok.pieces("in June 1944,") == ["in", "▁June", "▁1944", ","]
    assert tok.pieces("in the Afrika Korps and a U-boat")[2:] == ["▁Afrika▁Korps", "▁and", "▁a", "▁U-boat"]


@pytest.mark.parametrize("context", ["in {} ,", "in {},", "{} was", "({})", "said:\n{}\n", "the {}s"])
def test_every_forced_term_is_one_token_in_context(tok, context):
    for term in [*TERMS, IM_START, IM_END]:
        text = context.format(term)
        ids = tok.encode(text)
        want = term.replace(" ", "▁")
        want = want if context.startswith(("{", "(", "said")) or term.startswith("<|") else "▁" + want
        assert want in tok.pieces(text), (text, tok.pieces(text))
        assert tok.decode(ids) == text


def test_the_forced_list_has_years_months_and_terms():
    assert {"1900", "1944", "1950", *MONTHS, "Wehrmacht", "Luftwaffe", "Messerschmitt", "Afrika Korps"} <= set(TERMS)
    assert "1899" not in TERMS and "1951" not in TERMS
    assert 80 <= len(TERMS) - 51 - 12 <= 160
    assert forced_symbols(["June", "Afrika Korps"]) == [
        IM_START,
        IM_END,
        "June",
        "▁June",
        "Afrika▁Korps",
        "▁Afrika▁Korps",
    ]


def test_a_bare_user_defined_symbol_is_two_tokens_after_a_space(articles):
    """Why every term is forced twice: SentencePiece escapes " " to "▁" before it matches
    user-defined symbols, so "June" alone cannot match " June"."""
    lines = [s["text"] for a in articles for s in a["sections"]]
    writer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=writer,
        vocab_size=1000,
        model_type="bpe",
        user_defined_symbols=["June", "1944"],
        add_dummy_prefix=False,
        minloglevel=2,
    )
    bare = Tokenizer.__new__(Tokenizer)
    bare.sp = spm.SentencePieceProcessor(model_proto=writer.getvalue())
    assert bare.pieces("in June 1944,") == ["in", "▁", "June", "▁", "1944", ","]


def test_decode_encode_is_identity_on_the_sample_corpus(tok, articles):
    for article in articles:
        text = article["title"] + "\n" + "\n\n".join(s["heading"] + "\n" + s["text"] for s in article["sections"])
        ids = tok.encode(text)
        assert tok.unk_id not in ids
        assert tok.decode(ids) == text


@pytest.mark.parametrize("text", ODD_TEXTS)
def test_unicode_and_odd_whitespace_round_trip_without_unk(tok, text):
    ids = tok.encode(text)
    assert tok.unk_id not in ids
    assert tok.decode(ids) == text


def test_cjk_and_emoji_fall_back_to_bytes(tok):
    pieces = tok.pieces("😀日")
    assert pieces == ["<0xF0>", "<0x9F>", "<0x98>", "<0x80>", "<0xE6>", "<0x97>", "<0xA5>"]


def test_rerun_is_byte_identical(tmp_path, articles):
    params = write_params(tmp_path)
    records = sample_records(articles)
    assert train_tokenizer(tmp_path, params, articles, records) == 0
    first = {p.name: p.read_bytes() for p in (tmp_path / "tok").iterdir()}
    assert sorted(first) == ["spm.model", "spm.vocab", "tokenizer.json"]
    assert train_tokenizer(tmp_path, params, articles, records) == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "tok").iterdir()} == first
    assert not (tmp_path / "tok.tmp").exists()


def test_include_records_adds_their_text_and_counts_bad_lines(tmp_path, articles):
    records = [*sample_records(articles[:2]), "{not json"]
    assert (
        train_tokenizer(tmp_path, write_params(tmp_path, {"tokenizer.include_records": False}), articles, records) == 0
    )
    without = json.loads((tmp_path / "tok" / "tokenizer.json").read_text())
    assert train_tokenizer(tmp_path, write_params(tmp_path), articles, records) == 0
    with_records = json.loads((tmp_path / "tok" / "tokenizer.json").read_text())
    assert with_records["training_lines"] > without["training_lines"]
    assert (without["bad_record_lines"], with_records["bad_record_lines"]) == (0, 1)


def test_a_line_sample_follows_the_seed_and_keeps_input_order():
    lines = [f"line {i}" for i in range(1000)]
    assert sample_lines(lines, 0, 1) == lines
    first = sample_lines(lines, 100, 1)
    assert len(first) == 100 and first == sorted(first, key=lambda s: int(s.split()[1]))
    assert sample_lines(lines, 100, 1) == first != sample_lines(lines, 100, 2)


def test_long_lines_are_cut_at_a_space_and_lose_nothing():
    line = "word " * 500
    pieces = list(split_long(line, 100))
    assert "".join(pieces) == line and max(map(len, pieces)) <= 100


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"tokenizer.vocab_size": 600}, "leaves no learned pieces"),
        ({"tokenizer.vocab_size": 60000}, "sentencepiece training failed"),
        ({"tokenizer.year_min": 1960}, "year_min 1960 is after year_max"),
        ({"tokenizer.vocab_sise": 4000}, "unknown key(s) vocab_sise"),
    ],
)
def test_bad_params_are_clear_errors_and_write_nothing(tmp_path, articles, caplog, overrides, message):
    assert train_tokenizer(tmp_path, write_params(tmp_path, overrides), articles[:3]) == 2
    assert message in caplog.text
    assert not (tmp_path / "tok").exists()


def test_a_bad_term_names_its_line(tmp_path, caplog):
    terms = tmp_path / "terms.txt"
    terms.write_text("# comment\nPanzer\nA, B\n")
    code = stage.main(
        [
            "--params",
            str(write_params(tmp_path)),
            "--articles",
            "x",
            "--records",
            "y",
            "--terms",
            str(terms),
            "--out",
            str(tmp_path / "tok"),
        ]
    )
    assert code == 2
    assert "terms.txt:3: term 'A, B'" in caplog.text


def test_missing_articles_are_a_clear_error(tmp_path, caplog):
    code = stage.main(
        [
            "--params",
            str(write_params(tmp_path)),
            "--articles",
            str(tmp_path / "none.jsonl"),
            "--records",
            "y",
            "--terms",
            str(ROOT / "data" / "military_terms.txt"),
            "--out",
            str(tmp_path / "tok"),
        ]
    )
    assert code == 2
    assert "none.jsonl" in caplog.text


@pytest.mark.parametrize("content", [b"", b"not a sentencepiece model", bytes(range(256)) * 4])
def test_a_corrupt_model_file_is_a_clear_error(tmp_path, content):
    (tmp_path / "spm.model").write_bytes(content)
    with pytest.raises(TokenizerError, match="spm.model: not a valid SentencePiece model"):
        Tokenizer.load(tmp_path)


def test_a_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(TokenizerError, match="tokenizer model not found"):
        Tokenizer.load(tmp_path)


def test_encode_can_append_the_stop_token(tok):
    assert tok.encode("Paulus.", eos=True)[-1] == tok.im_end_id
