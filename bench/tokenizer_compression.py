"""Tokens per 1,000 characters: the forced-symbol tokenizer vs a plain one of the same size.

Both are trained exactly as the tokenizer stage trains (params.yaml `tokenizer` section, same
options and vocab_size); the plain one forces only the two ChatML tags. Forcing ~420 symbols
spends vocabulary slots on whole words (years, months, military terms) that BPE might not
have learned, and splits words that merely contain one ("Mayor" -> "May" + "or"), so the
question is what it costs in sequence length. Measured on the training text itself and on
articles held out of training (every 5th), which is the fairer number.

Corpus: data/clean/articles.jsonl when present (whatever scale the pipeline ran at), else the
shipped sample cleaned in memory. vocab_size is capped to what the held-out training text
supports (the run prints the size used).

Example:
  python -m bench.tokenizer_compression
Output:
  corpus=sample articles=28 chars=... vocab_size=4000
  text=train forced_per_1k=... plain_per_1k=... ratio=...
  text=held_out forced_per_1k=... plain_per_1k=... ratio=...
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from bench._timing import load_report
from common.params import load_section
from dataset.tokenizer import IM_END, IM_START, Tokenizer
from dataset.tokenizer_training import (
    TokenizerParams,
    article_lines,
    forced_symbols,
    forced_terms,
    read_terms,
    split_long,
    train_model,
)

ROOT = Path(__file__).resolve().parent.parent


def load_articles(clean: Path) -> tuple[str, list[dict]]:
    if clean.is_file():
        return str(clean), [json.loads(line) for line in clean.read_text(encoding="utf-8").splitlines() if line]
    from tests.tokenizer_helpers import sample_articles  # the shipped sample, cleaned as the clean stage does

    return "sample", sample_articles()


def lines_of(articles: list[dict], max_chars: int) -> list[str]:
    return [piece for article in articles for line in article_lines(article) for piece in split_long(line, max_chars)]


def per_1k(tokenizer: Tokenizer, lines: list[str]) -> float:
    tokens = sum(len(ids) for ids in tokenizer.encode_batch(lines))
    return 1000 * tokens / sum(map(len, lines))


def train(lines: list[str], symbols: list[str], params: TokenizerParams) -> Tokenizer:
    """Train; when the text cannot fill vocab_size, retry 10% smaller (reported by the caller)."""
    while True:
        try:
            return Tokenizer.from_bytes(train_model(lines, symbols, params))
        except RuntimeError:
            smaller = int(params.vocab_size * 0.9)
            if smaller <= 4 + len(symbols) + 256:
                raise
            params = dataclasses.replace(params, vocab_size=smaller)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--clean", type=Path, default=ROOT / "data" / "clean" / "articles.jsonl")
    parser.add_argument("--terms", type=Path, default=ROOT / "data" / "military_terms.txt")
    args = parser.parse_args(argv)
    params = load_section(args.params, "tokenizer", TokenizerParams)
    source, articles = load_articles(args.clean)
    train_lines = lines_of([a for i, a in enumerate(articles) if i % 5], params.max_sentence_chars)
    held_out = lines_of(articles[::5], params.max_sentence_chars)
    terms = forced_terms(
        read_terms(args.terms.read_text(encoding="utf-8").splitlines()), params.year_min, params.year_max
    )
    forced = train(train_lines, forced_symbols(terms), params)
    plain = train(train_lines, [IM_START, IM_END], dataclasses.replace(params, vocab_size=forced.vocab_size))
    print(
        f"corpus={Path(source).name if source != 'sample' else source} articles={len(articles)} "
        f"chars={sum(map(len, train_lines + held_out))} vocab_size={forced.vocab_size} "
        f"forced_symbols={len(forced_symbols(terms))} {load_report()}"
    )
    for name, lines in (("train", train_lines), ("held_out", held_out)):
        f, p = per_1k(forced, lines), per_1k(plain, lines)
        print(f"text={name} forced_per_1k={f:.1f} plain_per_1k={p:.1f} ratio={f / p:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
