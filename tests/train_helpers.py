"""Packed training data made by the real stages (tokenizer → tokenize → pack) from a slice
of the sample corpus, for the train, evaluate and orchestrate tests."""

from __future__ import annotations

from pathlib import Path

from stages import encode as tokenize
from stages import pack
from tests.conftest import write_params
from tests.tokenizer_helpers import sample_articles, sample_records, train_tokenizer, write_jsonl


def build_training_data(root: Path, **overrides) -> dict[str, Path]:
    """Returns paths: params, tokenizer, tokens, packed, records. `overrides` are dotted params."""
    settings = {
        "tokenizer.vocab_size": 1200,
        "encode.val_fraction": 0.3,
        "encode.seed": 2,
        "pack.context_length": 128,
        "train.variant": "tiny",
        "train.batch_size": 4,
        "train.effective_batch_size": 8,
        "train.warmup_steps": 2,
        "train.checkpoint_every": 4,
        "train.eval_every": 4,
        "train.max_eval_batches": 2,
        "train.monitor_every": 4,
        "train.max_steps": 8,
    }
    settings.update(overrides)
    params = write_params(root, settings)
    articles = sample_articles()[:8]
    records = sample_records(articles, per_article=6)
    assert train_tokenizer(root / "tokenizer", params, articles, records) == 0
    records_path = write_jsonl(root / "records.jsonl", records)
    articles_path = write_jsonl(root / "articles.jsonl", articles)  # raw text, with encode.mix.raw > 0
    tokens, packed = root / "tokens", root / "packed"
    assert (
        tokenize.main(
            [
                "--params",
                str(params),
                "--tokenizer",
                str(root / "tokenizer/tok"),
                "--in",
                str(records_path),
                "--articles",
                str(articles_path),
                "--out",
                str(tokens),
                "--metrics",
                str(root / "tokenize.json"),
            ]
        )
        == 0
    )
    assert (
        pack.main(
            [
                "--params",
                str(params),
                "--tokens",
                str(tokens),
                "--out",
                str(packed),
                "--metrics",
                str(root / "pack.json"),
            ]
        )
        == 0
    )
    return {
        "params": params,
        "tokenizer": root / "tokenizer/tok",
        "tokens": tokens,
        "packed": packed,
        "records": records_path,
    }


def train_args(paths: dict[str, Path], run: Path, *extra: str) -> list[str]:
    return [
        "--params",
        str(paths["params"]),
        "--packed",
        str(paths["packed"]),
        "--tokenizer",
        str(paths["tokenizer"]),
        "--checkpoints",
        str(run / "checkpoints"),
        "--out",
        str(run / "model"),
        "--metrics",
        str(run / "train.json"),
        "--plot",
        str(run / "monitor.png"),
        "--live",
        str(run / "dvclive"),
        *extra,
    ]
