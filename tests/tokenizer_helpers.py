"""Shared by the tokenizer/encode tests and bench: the sample corpus as the clean stage would
write it (built from data/sample, so no test depends on pipeline outputs), a tokenizer
trained on it, and chat records about its articles."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from common.params import load_section
from corpus.articles import load_sample
from corpus.clean import CleanParams, clean_article
from stages import tokenizer as tokenizer_stage

ROOT = Path(__file__).resolve().parent.parent


def sample_articles() -> list[dict]:
    """data/sample through the download parser and the clean stage's article cleaner."""
    params = load_section(ROOT / "params.yaml", "clean", CleanParams)
    articles = []
    for raw in load_sample(ROOT / "data" / "sample"):
        article, _ = clean_article(raw, params, Counter())
        if article is not None:
            articles.append(article)
    return articles


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records))
    return path


def chat(question: str, answer: str, article: str, record_id: str = "r") -> dict:
    return {
        "id": record_id,
        "kind": "qa",
        "type": "what",
        "window": "w",
        "article": article,
        "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
        "meta": {},
    }


def sample_records(articles: list[dict], per_article: int = 3) -> list[dict]:
    """A few chat records per article: a question about a section, its first paragraph as answer."""
    records = []
    for article in articles:
        for section in article["sections"][:per_article]:
            answer = section["text"].split("\n\n")[0]
            question = f"What happened in {article['title']}: {section['heading'] or 'overview'}?"
            records.append(chat(question, answer, article["title"], f"{article['title']}#{len(records)}"))
    return records


def train_tokenizer(folder: Path, params: Path, articles: list[dict], records: list | None = None) -> int:
    """Run the tokenizer stage on `articles` (and `records`) into folder/tok; returns its exit code."""
    folder.mkdir(parents=True, exist_ok=True)
    articles_path = write_jsonl(folder / "articles.jsonl", articles)
    records_path = write_jsonl(folder / "records.jsonl", records or [])
    return tokenizer_stage.main(
        [
            "--params",
            str(params),
            "--articles",
            str(articles_path),
            "--records",
            str(records_path),
            "--terms",
            str(ROOT / "data" / "military_terms.txt"),
            "--out",
            str(folder / "tok"),
        ]
    )
