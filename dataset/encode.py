"""Encoding chat records for training: ChatML ids and loss mask, and the held-out split by article.

Each record's messages are rendered and encoded by dataset/chatml.py: mask 1 on the assistant
content and its `<|im_end|>`, 0 on the user turn, the role headers and the newlines. The
held-out split is by article: an article goes to `val` when a hash of (seed, title) falls
below `val_fraction`, so it lands in the same split whatever other articles there are, and
evaluation never sees a training article. A record that cannot be a training conversation is
dropped with a reason (common/reasons.py): `invalid_utf8`, `invalid_json`, `not_an_object`,
`no_article`, or dataset/chatml.py's message reasons.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from common.files import JsonlLine
from common.params import ParamsError
from common.reasons import Drops
from dataset.chatml import ChatEncoder, message_problem
from dataset.token_files import SplitWriter


@dataclass(frozen=True)
class EncodeParams:
    val_fraction: float  # share of articles held out for evaluation
    seed: int  # salts the article hash: a new seed draws a new held-out set


def check_params(params: EncodeParams, where: str) -> None:
    if not 0.0 <= params.val_fraction < 1.0:
        raise ParamsError(f"{where}:encode.val_fraction: must be in [0, 1), got {params.val_fraction}")


def article_split(article: str, val_fraction: float, seed: int) -> str:
    """'val' or 'train' for an article, from a stable hash (not random.shuffle: membership
    must not depend on which other articles are present or on their order)."""
    digest = hashlib.sha256(f"{seed}\x1f{article}".encode()).digest()
    return "val" if int.from_bytes(digest[:8], "big") / 2**64 < val_fraction else "train"


def record_problem(record: object) -> str | None:
    """Why a record cannot be encoded (a drop reason), or None."""
    if not isinstance(record, dict):
        return "not_an_object"
    if not isinstance(record.get("article"), str) or not record["article"].strip():
        return "no_article"
    return message_problem(record.get("messages"))


def encode_records(
    lines: Iterable[JsonlLine],
    encoder: ChatEncoder,
    writers: dict[str, SplitWriter],
    params: EncodeParams,
    drops: Drops,
) -> int:
    """Encode each readable, well-formed record into its article's split; returns records kept."""
    kept = 0
    for line in lines:
        reason = line.error or record_problem(line.record)
        if reason:
            drops.add(reason, f"line={line.lineno}")
            continue
        record = line.record
        ids, mask = encoder.encode(record["messages"])
        split = article_split(record["article"], params.val_fraction, params.seed)
        writers[split].add(ids, mask, str(record.get("id", line.lineno)), record["article"])
        kept += 1
    return kept
