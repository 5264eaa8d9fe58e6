"""Training the SentencePiece model of the tokenizer stage, with WWII terms forced to single tokens.

The training text is the cleaned corpus (titles, headings, one line per paragraph), plus every
message of the chat records when `tokenizer.include_records` is true. Forced single tokens
(SentencePiece user-defined symbols, matched anywhere in the text before segmentation): the
ChatML tags, every year `year_min`..`year_max`, the twelve month names and the terms listed
in data/military_terms.txt. Byte fallback turns any character outside the vocabulary into its
UTF-8 bytes, so no text is ever `<unk>` and decode(encode(x)) == x.

Whitespace: SentencePiece turns " " into "▁" *before* it matches user-defined symbols, so a
forced "June" alone gives " June" -> ["▁", "June"]: two tokens. Each term is therefore forced
twice, as "June" (after "\\n", "(" or at the start of a text) and as "▁June" (after a space):
"in June 1944," -> ["in", "▁June", "▁1944", ","]. A space inside a term ("Afrika Korps")
becomes "▁" for the same reason (google/sentencepiece#60).

The trained model is used through dataset/tokenizer.py (Tokenizer), which owns the folder's
file names and special ids.
"""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import sentencepiece as spm

from common.files import iter_jsonl_lines, read_jsonl
from common.params import ParamsError
from common.progress import progress
from dataset.tokenizer import (
    BOS_ID,
    EOS_ID,
    IM_END,
    IM_START,
    MODEL_FILE,
    PAD_ID,
    UNK_ID,
    WHITESPACE_MARK,
    Tokenizer,
)

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
BYTE_PIECES = 256  # byte_fallback adds <0x00>..<0xFF> to the vocabulary


@dataclass(frozen=True)
class TokenizerParams:
    vocab_size: int  # pieces in the model, special, forced and byte pieces included
    model_type: Literal["bpe", "unigram"]  # bpe: ~8% fewer tokens on the sample, thread-count independent
    include_records: bool  # also train on the chat records' message text
    year_min: int  # every year in [year_min, year_max] is one token
    year_max: int
    character_coverage: float  # share of characters in the alphabet; the rest go to bytes
    max_sentences: int  # 0 = every line; else a seeded reservoir sample of this many lines
    max_sentence_chars: int  # longer lines are cut at a space (the trainer would skip them)
    num_threads: int  # trainer threads; stored in spm.model, so part of its bytes
    seed: int  # for the line sample


def read_terms(lines: Iterable[str], source: str = "terms") -> list[str]:
    """Terms of a term list: one per line, `#` comments and blank lines ignored."""
    terms = []
    for number, raw in enumerate(lines, start=1):
        term = raw.split("#", 1)[0].strip()
        if not term:
            continue
        # A comma would be split by the trainer's comma-separated symbol list; other space
        # than one " " between words, or the mark itself, could never match escaped text.
        if "," in term or WHITESPACE_MARK in term or "  " in term or any(c.isspace() and c != " " for c in term):
            raise ValueError(f"{source}:{number}: term {term!r} has a comma, '▁' or odd whitespace")
        terms.append(term)
    return terms


def forced_terms(terms: Iterable[str], year_min: int, year_max: int) -> list[str]:
    """Years, months, then the listed terms, first occurrence kept."""
    years = [str(y) for y in range(year_min, year_max + 1)]
    return list(dict.fromkeys([*years, *MONTHS, *terms]))


def forced_symbols(terms: Iterable[str]) -> list[str]:
    """User-defined symbols: the ChatML tags, then each term bare and after a space ("▁")."""
    symbols = [IM_START, IM_END]
    for term in terms:
        escaped = term.replace(" ", WHITESPACE_MARK)
        symbols += [escaped, WHITESPACE_MARK + escaped]
    return list(dict.fromkeys(symbols))


def split_long(line: str, max_chars: int) -> Iterator[str]:
    """Pieces of at most ~max_chars, cut after a space: the trainer silently skips lines past
    max_sentence_length bytes (SentencePiece training options), losing their text."""
    while len(line) > max_chars:
        cut = line.rfind(" ", 0, max_chars) + 1 or max_chars
        yield line[:cut]
        line = line[cut:]
    if line:
        yield line


def article_lines(article: dict) -> Iterator[str]:
    """Title, headings and paragraphs of a clean article, one line each."""
    yield article["title"]
    for section in article["sections"]:
        if section.get("heading"):
            yield section["heading"]
        yield from (p for p in section["text"].split("\n") if p.strip())


def record_lines(record: object) -> Iterator[str]:
    """The lines of every message content of a chat record (anything else yields nothing)."""
    messages = record.get("messages") if isinstance(record, dict) else None
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            yield from (line for line in content.split("\n") if line.strip())


def sample_lines(lines: Iterable[str], max_sentences: int, seed: int) -> list[str]:
    """All lines, or a reservoir sample kept in input order. Sampled here, not by the trainer:
    its input_sentence_size sampling ignores set_random_generator_seed once its generator
    exists in the process (tried: two seeds gave the same sample), so it is not reproducible."""
    if max_sentences <= 0:
        return list(lines)
    rng = random.Random(seed)
    reservoir: list[tuple[int, str]] = []
    for index, line in enumerate(lines):
        if index < max_sentences:
            reservoir.append((index, line))
        else:
            slot = rng.randrange(index + 1)
            if slot < max_sentences:
                reservoir[slot] = (index, line)
    return [line for _, line in sorted(reservoir)]


def corpus_lines(articles: Path, records: Path | None, stats: dict) -> Iterator[str]:
    """Stream the training text: article lines, then record lines (unreadable record lines are
    counted, not fatal: the encode stage is the one that judges records)."""
    for article in progress(read_jsonl(articles), desc="articles", unit="article"):
        yield from article_lines(article)
    if records is not None:
        for line in progress(iter_jsonl_lines(records), desc="records", unit="record"):
            stats["bad_record_lines"] += line.error is not None
            yield from record_lines(line.record)


def train_model(lines: list[str], symbols: list[str], params: TokenizerParams) -> bytes:
    """Train and return the serialized model. Options: SentencePiece doc/options.md."""
    writer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),  # no input path is recorded in the model bytes
        model_writer=writer,
        model_type=params.model_type,
        vocab_size=params.vocab_size,
        character_coverage=params.character_coverage,
        user_defined_symbols=symbols,
        byte_fallback=True,  # unknown characters become UTF-8 byte pieces, never <unk>
        # identity: no NFKC (clean already normalised); nmt_nfkc would rewrite text and
        # break decode(encode(x)) == x.
        normalization_rule_name="identity",
        # ChatML content follows "\n" with no space; a dummy "▁" prefix would add one.
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,  # keep double, leading and trailing spaces exactly
        max_sentence_length=4 * params.max_sentence_chars,  # bytes; lines are already cut
        input_sentence_size=0,  # sampled above, reproducibly
        num_threads=params.num_threads,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        pad_id=PAD_ID,
        minloglevel=1,
    )
    return writer.getvalue()


def vocab_text(tokenizer: Tokenizer) -> str:
    """The .vocab file SentencePiece writes next to a model: piece<TAB>score per line."""
    sp = tokenizer.sp
    return "".join(f"{sp.id_to_piece(i)}\t{sp.get_score(i):g}\n" for i in range(sp.vocab_size()))


def check_params(params: TokenizerParams, n_symbols: int, where: str) -> None:
    if params.year_min > params.year_max:
        raise ParamsError(f"{where}: year_min {params.year_min} is after year_max {params.year_max}")
    reserved = 4 + n_symbols + BYTE_PIECES
    if params.vocab_size <= reserved:
        raise ParamsError(
            f"{where}.vocab_size: {params.vocab_size} leaves no learned pieces: 4 special + "
            f"{n_symbols} forced + {BYTE_PIECES} byte pieces = {reserved}"
        )
    if not 0.9 <= params.character_coverage <= 1.0 or params.max_sentence_chars < 100 or params.num_threads < 1:
        raise ParamsError(f"{where}: character_coverage in [0.9, 1], max_sentence_chars >= 100, num_threads >= 1")


def training_manifest(model: bytes, tokenizer: Tokenizer, params: TokenizerParams, n_terms: int, n_symbols: int,
             lines: list[str], bad_record_lines: int) -> dict:  # fmt: skip
    """tokenizer.json: what was trained, on how much text, with which special ids."""
    return {
        "model": MODEL_FILE,
        "vocab_size": tokenizer.vocab_size,
        "model_type": params.model_type,
        "special_ids": {
            "unk": UNK_ID,
            "bos": BOS_ID,
            "eos": EOS_ID,
            "pad": PAD_ID,
            "im_start": tokenizer.im_start_id,
            "im_end": tokenizer.im_end_id,
        },
        "stop_id": tokenizer.eos_id,
        "forced_terms": n_terms,
        "forced_symbols": n_symbols,
        "training_lines": len(lines),
        "training_chars": sum(map(len, lines)),
        "include_records": params.include_records,
        "bad_record_lines": bad_record_lines,
        "model_sha256": hashlib.sha256(model).hexdigest(),
    }
