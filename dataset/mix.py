"""The training data mix: which record kinds (and prompt types) feed the train split, with what
weight, and the raw-text passages of the trained articles.

`encode.mix` gives every kind a weight: 0 drops the kind from train, a fraction keeps a seeded
share of its records (each record's own hash decides, so membership does not depend on the
other records), 2.0 writes each record twice, 1.5 twice for a seeded half; a record of a kind
the mix does not name (none today) trains at weight 1, as before the mix. `encode.type_weights`
multiplies that weight per prompt type (the record's `type`; unnamed types 1): the short-answer
types are a sliver of the loss tokens and barely learned at weight 1. Only the train
split is mixed: val (the unseen control) and recall are built as without a mix, so the
evaluation asks the same questions whatever the mix.

The kind `raw` is plain text of the trained articles (data/clean/articles.jsonl; never a
held-out `val` article): each article's paragraphs, joined while they fit in `max_tokens`
(the pack context), a longer paragraph cut into pieces of `max_tokens` ids; no ChatML, the
loss on every token. Raw text of a trained article teaches the facts its recall questions
ask about: that is what continued pretraining on raw text is for.

Example:
  copies = mix_copies(1.5, "74f6627f024a4f37", seed=1941)     # 1 or 2
  for record_id, ids in article_passages(article, tokenizer, 512): ...
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping

from common.params import ParamsError
from dataset.tokenizer import Tokenizer

CHAT_KINDS = ("qa", "contrastive", "qpt")
MIX_KINDS = (*CHAT_KINDS, "raw")
RAW = "raw"


def passage_tokens(params: dict, where: str) -> int:
    """pack.context_length from the whole params file: raw passages are cut to fit one context,
    the one size the pack stage never splits (the only key the encode stage reads outside its section)."""
    pack = params.get("pack")
    value = pack.get("context_length") if isinstance(pack, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ParamsError(f"{where}:pack.context_length: expected an int >= 2 (raw passages fit it), got {value!r}")
    return value


def check_mix(mix: object, where: str) -> None:
    """Every kind named once with a weight >= 0, and something left to train on."""
    key = f"{where}:encode.mix"
    if not isinstance(mix, Mapping):
        raise ParamsError(f"{key}: expected a mapping of kind to weight, got {mix!r}")
    unknown = sorted(set(mix) - set(MIX_KINDS))
    missing = [kind for kind in MIX_KINDS if kind not in mix]
    if unknown or missing:
        raise ParamsError(
            f"{key}: kinds are {', '.join(MIX_KINDS)}"
            + (f"; unknown: {', '.join(map(str, unknown))}" if unknown else "")
            + (f"; missing: {', '.join(missing)}" if missing else "")
        )
    for kind, weight in mix.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < math.inf:
            raise ParamsError(f"{key}.{kind}: expected a weight >= 0 (0 drops the kind), got {weight!r}")
    if not any(mix.values()):
        raise ParamsError(f"{key}: every weight is 0, nothing would train")


def check_type_weights(type_weights: object, where: str) -> None:
    """A mapping of prompt-type name to a finite weight >= 0 (a multiplier on the kind's weight)."""
    key = f"{where}:encode.type_weights"
    if not isinstance(type_weights, Mapping):
        raise ParamsError(f"{key}: expected a mapping of prompt type to weight ({{}} for none), got {type_weights!r}")
    for name, weight in type_weights.items():
        if not isinstance(name, str) or not name:
            raise ParamsError(f"{key}: prompt-type names are non-empty strings, got {name!r}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < math.inf:
            raise ParamsError(f"{key}.{name}: expected a weight >= 0 (0 drops the type from train), got {weight!r}")


def train_weight(mix: Mapping[str, float], type_weights: Mapping[str, float], record: dict) -> float:
    """A train record's weight: its kind's mix weight times its prompt type's (1 when unnamed)."""
    weight = mix.get(record.get("kind"), 1.0)
    prompt_type = record.get("type")
    if isinstance(prompt_type, str) and prompt_type in type_weights:
        weight *= type_weights[prompt_type]
    return weight


def is_default_mix(mix: Mapping[str, float]) -> bool:
    """Every chat kind at 1 and no raw text: the train split exactly as without a mix."""
    return all(mix[kind] == 1 for kind in CHAT_KINDS) and mix[RAW] == 0


def mix_copies(weight: float, record_id: str, seed: int) -> int:
    """How many times a record of this weight goes into train: floor(weight), plus one more
    when the record's hash of (seed, id) falls below the fractional part."""
    whole, fraction = int(weight), weight - int(weight)
    if not fraction:
        return whole
    digest = hashlib.sha256(f"{seed}\x1fmix\x1f{record_id}".encode()).digest()
    return whole + (int.from_bytes(digest[:8], "big") / 2**64 < fraction)


def article_paragraphs(article: dict) -> list[str]:
    """The article's paragraphs, section by section (a clean article: {"title", "sections":
    [{"heading", "text"}]}); blank lines and single newlines both separate paragraphs."""
    sections = article.get("sections") if isinstance(article, dict) else None
    if not isinstance(sections, list):
        return []
    texts = (s.get("text") for s in sections if isinstance(s, dict))
    return [p.strip() for text in texts if isinstance(text, str) for p in text.split("\n") if p.strip()]


def raw_record_id(title: str, index: int) -> str:
    return hashlib.sha256(f"raw\x1f{title}\x1f{index}".encode()).hexdigest()[:16]


def article_passages(article: dict, tokenizer: Tokenizer, max_tokens: int) -> Iterator[tuple[str, list[int]]]:
    """(record id, ids) of the article's passages: paragraphs joined by newlines while the
    joined text encodes to at most `max_tokens` ids; a paragraph longer than that alone is cut
    into `max_tokens`-id pieces (the pack stage would split it the same way)."""
    title = article["title"]
    passages: list[list[int]] = []
    current: list[str] = []
    current_ids: list[int] = []
    for paragraph in article_paragraphs(article):
        joined = tokenizer.encode("\n".join([*current, paragraph]))
        if len(joined) <= max_tokens:
            current, current_ids = [*current, paragraph], joined
            continue
        if current:
            passages.append(current_ids)
        ids = tokenizer.encode(paragraph)
        if len(ids) <= max_tokens:
            current, current_ids = [paragraph], ids
        else:
            passages.extend(ids[start : start + max_tokens] for start in range(0, len(ids), max_tokens))
            current, current_ids = [], []
    if current:
        passages.append(current_ids)
    for index, ids in enumerate(passages):
        yield raw_record_id(title, index), ids
