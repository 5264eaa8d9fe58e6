"""tokenizer: train the SentencePiece model, with WWII terms forced to single tokens.

The training text is the cleaned corpus (titles, headings, one line per paragraph), plus every
message of the chat records when `tokenizer.include_records` is true. Forced single tokens
(SentencePiece user-defined symbols, matched anywhere in the text before segmentation): the
ChatML tags, every year `year_min`..`year_max`, the twelve month names and the terms listed
in data/military_terms.txt. Byte fallback turns any character outside the vocabulary into its
UTF-8 bytes, so no text is ever `<unk>` and decode(encode(x)) == x. The logic is
dataset/tokenizer_training.py; the folder format and its reader are dataset/tokenizer.py.

Whitespace: SentencePiece turns " " into "▁" *before* it matches user-defined symbols, so a
forced "June" alone gives " June" -> ["▁", "June"]: two tokens. Each term is therefore forced
twice, as "June" (after "\\n", "(" or at the start of a text) and as "▁June" (after a space):
"in June 1944," -> ["in", "▁June", "▁1944", ","]. A space inside a term ("Afrika Korps")
becomes "▁" for the same reason (google/sentencepiece#60).

Input:  data/clean/articles.jsonl, data/shuffled.jsonl (read only when include_records),
        data/military_terms.txt
Output: data/tokenizer/ with spm.model, spm.vocab (piece<TAB>score) and tokenizer.json
        (vocab size, special ids, counts of forced symbols and training text)

Example:
  python -m stages.tokenizer --params params.yaml --articles data/clean/articles.jsonl \
      --records data/shuffled.jsonl --terms data/military_terms.txt --out data/tokenizer
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from common.cli import setup_logging
from common.files import JsonlError, atomic_dir, write_json
from common.params import ParamsError, load_section
from dataset.tokenizer import MANIFEST_FILE, MODEL_FILE, VOCAB_FILE, Tokenizer
from dataset.tokenizer_training import (
    TokenizerParams,
    check_params,
    corpus_lines,
    forced_symbols,
    forced_terms,
    read_terms,
    sample_lines,
    split_long,
    train_model,
    training_manifest,
    vocab_text,
)

log = logging.getLogger("tokenizer")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--articles", type=Path, required=True)
    parser.add_argument("--records", type=Path, required=True, help="read only when tokenizer.include_records")
    parser.add_argument("--terms", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params = load_section(args.params, "tokenizer", TokenizerParams)
        terms = forced_terms(
            read_terms(args.terms.read_text(encoding="utf-8").splitlines(), str(args.terms)),
            params.year_min,
            params.year_max,
        )
        symbols = forced_symbols(terms)
        check_params(params, len(symbols), f"{args.params}:tokenizer")
        stats = {"bad_record_lines": 0}
        corpus = corpus_lines(args.articles, args.records if params.include_records else None, stats)
        lines = sample_lines(
            (p for t in corpus for p in split_long(t, params.max_sentence_chars)), params.max_sentences, params.seed
        )
    except (ParamsError, JsonlError, ValueError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    except (KeyError, TypeError, AttributeError) as exc:
        log.error("%s: not a clean article (needs title and sections): %r", args.articles, exc)
        return 2
    if not lines:
        log.error("%s: no training text", args.articles)
        return 2
    try:
        model = train_model(lines, symbols, params)
    except RuntimeError as exc:  # e.g. a vocab_size the corpus cannot fill (hard_vocab_limit)
        log.error("sentencepiece training failed (vocab_size=%d): %s", params.vocab_size, exc)
        return 2
    tokenizer = Tokenizer.from_bytes(model, "trained model")
    manifest = training_manifest(model, tokenizer, params, len(terms), len(symbols), lines, stats["bad_record_lines"])
    with atomic_dir(args.out) as tmp:
        (tmp / MODEL_FILE).write_bytes(model)
        (tmp / VOCAB_FILE).write_text(vocab_text(tokenizer), encoding="utf-8")
        write_json(tmp / MANIFEST_FILE, manifest)
    log.info("vocab_size=%d forced=%d lines=%d out=%s", tokenizer.vocab_size, len(symbols), len(lines), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
