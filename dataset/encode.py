"""Encoding chat records for training: ChatML ids and loss mask, and the three splits.

Each record's messages are rendered and encoded by dataset/chatml.py: mask 1 on the assistant
content and its `<|im_end|>`, 0 on the user turn, the role headers and the newlines. Splits:
- `val` (the `unseen` control): every record of the articles whose hash of (seed, title)
  falls below `val_fraction`, so an article lands in the same split whatever other articles
  there are, and no held-out article is ever trained on;
- `recall`: of every trained article, a seeded share (`recall_fraction`) of its question
  groups (a qa/contrastive record with its contrast-swap mirror), minus the groups with a
  near-duplicate question in train (dataset/recall_split.py);
- `train`: the rest, including every `qpt` record of a trained article, weighted by kind
  with `mix` and by prompt type with `type_weights` (dataset/mix.py: 0 drops a kind, 2.0
  repeats it; repeats are written in later passes, so a record's copies never sit side by
  side), then the raw-text passages of the trained articles when mix.raw > 0 (last, so
  they are one span of the split).
Choosing recall takes passes over the input before the encoding pass (groups, their
questions, the training questions), so memory holds only the held-out questions.
A record that cannot be a training conversation is dropped with a reason (common/reasons.py):
`invalid_utf8`, `invalid_json`, `not_an_object`, `no_article`, or dataset/chatml.py's message
reasons.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from common.files import JsonlLine
from common.params import ParamsError
from common.reasons import Drops
from dataset.chatml import ChatEncoder, message_problem
from dataset.mix import RAW, article_passages, check_mix, check_type_weights, mix_copies, train_weight
from dataset.recall_split import (
    HELD_OUT_KINDS,
    Group,
    RecallQuestionIndex,
    article_split,
    choose_recall_groups,
    group_of,
    guard_near_duplicates,
    question_of,
)
from dataset.token_files import SplitWriter
from dataset.tokenizer import Tokenizer

SPLITS = ("train", "val", "recall")


@dataclass(frozen=True)
class EncodeParams:
    val_fraction: float  # share of articles held out for evaluation (the unseen control)
    recall_fraction: float  # share of each trained article's question groups held out (recall)
    recall_near_dup_threshold: float  # word-3-gram or 5-char-shingle Jaccard that sends a recall group back to train
    seed: int  # salts the article and group hashes: a new seed draws new held-out sets
    mix: dict[str, float]  # train-split weight per record kind (dataset/mix.py); raw: trained articles' text
    type_weights: dict[str, float]  # multiplies a train record's kind weight by its prompt type's ({}: all 1)


def check_params(params: EncodeParams, where: str) -> None:
    check_mix(params.mix, where)
    check_type_weights(params.type_weights, where)
    if not 0.0 <= params.val_fraction < 1.0:
        raise ParamsError(f"{where}:encode.val_fraction: must be in [0, 1), got {params.val_fraction}")
    if not 0.0 <= params.recall_fraction < 1.0:
        raise ParamsError(f"{where}:encode.recall_fraction: must be in [0, 1), got {params.recall_fraction}")
    if not 0.0 < params.recall_near_dup_threshold <= 1.0:
        raise ParamsError(
            f"{where}:encode.recall_near_dup_threshold: must be in (0, 1], got {params.recall_near_dup_threshold}"
        )


def record_problem(record: object) -> str | None:
    """Why a record cannot be encoded (a drop reason), or None."""
    if not isinstance(record, dict):
        return "not_an_object"
    if not isinstance(record.get("article"), str) or not record["article"].strip():
        return "no_article"
    return message_problem(record.get("messages"))


def record_id(line: JsonlLine) -> str:
    return str(line.record.get("id", line.lineno))


@dataclass
class SplitPlan:
    """Which split every record goes to: val by article, recall by group, else train."""

    params: EncodeParams
    recall: set[Group] = field(default_factory=set)  # held out, after the near-duplicate guard
    moved: set[Group] = field(default_factory=set)  # chosen, then sent back to train
    questions: dict[Group, list[str]] = field(default_factory=dict)  # of the recall groups

    def held_out_candidate(self, line: JsonlLine) -> Group | None:
        """The record's group when it is a qa/contrastive record of a trained article."""
        record = line.record
        if record.get("kind") not in HELD_OUT_KINDS:
            return None
        if article_split(record["article"], self.params.val_fraction, self.params.seed) != "train":
            return None
        return group_of(record, record_id(line))

    def split_of(self, line: JsonlLine) -> str:
        if article_split(line.record["article"], self.params.val_fraction, self.params.seed) == "val":
            return "val"
        return "recall" if self.held_out_candidate(line) in self.recall else "train"


def usable(lines: Iterable[JsonlLine]) -> Iterator[JsonlLine]:
    """The lines the encoding pass keeps (the planning passes skip the others silently)."""
    return (line for line in lines if not line.error and not record_problem(line.record))


def plan_splits(passes: Iterator[Iterable[JsonlLine]], params: EncodeParams) -> SplitPlan:
    """Choose the recall groups, then move back those with a near-duplicate question in train.
    `passes` yields a fresh iterable of the input lines for each of the three reads."""
    plan = SplitPlan(params)
    groups = {g for line in usable(next(passes)) if (g := plan.held_out_candidate(line))}
    chosen = choose_recall_groups(groups, params.recall_fraction, params.seed)
    questions: dict[Group, list[str]] = defaultdict(list)
    for line in usable(next(passes)):
        if (group := plan.held_out_candidate(line)) in chosen:
            questions[group].append(question_of(line.record))
    plan.recall = chosen
    train = (question_of(line.record) for line in usable(next(passes)) if plan.split_of(line) == "train")
    plan.moved = guard_near_duplicates(dict(questions), train, params.recall_near_dup_threshold)
    plan.recall = chosen - plan.moved
    plan.questions = {group: questions[group] for group in sorted(plan.recall)}
    return plan


class KindCounts(dict):
    """kind (or prompt type) -> {"records_in", "records", "tokens"} of the train split: before
    and after the mix."""

    def add(self, kind: str, copies: int, tokens: int) -> None:
        counts = self.setdefault(kind, {"records_in": 0, "records": 0, "tokens": 0})
        counts["records_in"] += 1
        counts["records"] += copies
        counts["tokens"] += copies * tokens


def encode_records(
    lines: Iterable[JsonlLine],
    encoder: ChatEncoder,
    writers: dict[str, SplitWriter],
    plan: SplitPlan,
    drops: Drops,
    guard: RecallQuestionIndex | None = None,
    kinds: KindCounts | None = None,
    repeat: int = 0,
    types: KindCounts | None = None,
) -> tuple[int, set[int], int]:
    """Encode each readable, well-formed record into its split. Returns the records kept, the
    recall questions (`guard` entries) with a near duplicate in what train got (`guard`: an index
    of the final recall questions; an independent check of plan_splits, empty when it is right)
    and the most copies of a train record. Train records are weighted by `plan.params.mix` times
    `type_weights`: pass `repeat` 0 writes every split and the first copy of each train record
    (counted into `kinds`, and into `types` when its type is weighted), pass k > 0 only the
    train records with more than k copies; drops are counted in pass 0 only."""
    kept, leaked, most = 0, set(), 0
    mix, type_weights, seed = plan.params.mix, plan.params.type_weights, plan.params.seed
    for line in lines:
        reason = line.error or record_problem(line.record)
        if reason:
            if not repeat:
                drops.add(reason, f"line={line.lineno}")
            continue
        record = line.record
        split = plan.split_of(line)
        copies = mix_copies(train_weight(mix, type_weights, record), record_id(line), seed) if split == "train" else 1
        most = max(most, copies)  # 1 outside train: no repeat pass
        if repeat and (split != "train" or copies <= repeat):
            continue
        ids, mask = encoder.encode(record["messages"])
        if repeat == 0 and kinds is not None and split == "train":
            kinds.add(str(record.get("kind")), copies, len(ids))
        prompt_type = record.get("type")
        weighted_type = isinstance(prompt_type, str) and prompt_type in type_weights
        if repeat == 0 and types is not None and split == "train" and weighted_type:
            types.add(prompt_type, copies, len(ids))
        if copies > repeat:
            writers[split].add(ids, mask, record_id(line), record["article"])
        if guard is not None and split == "train" and copies:
            leaked |= guard.matching_entries(question_of(record))
        kept += 1
    return kept, leaked, most


def encode_raw_text(
    articles: Iterable[JsonlLine],
    tokenizer: Tokenizer,
    writer: SplitWriter,
    params: EncodeParams,
    max_tokens: int,
    kinds: KindCounts | None = None,
    repeat: int = 0,
) -> int:
    """The raw-text passages of every trained article (never a val article) into the train
    writer, weighted by mix.raw, loss on every token; pass `repeat` as in encode_records (one
    read of the articles per pass: nothing is held in memory). Returns the most copies of a
    passage, so the caller knows how many passes to run."""
    most = 0
    for line in articles:
        article = line.record
        if line.error or not isinstance(article, dict) or not isinstance(article.get("title"), str):
            continue  # the clean stage wrote these; an unreadable line has nothing to teach
        if article_split(article["title"], params.val_fraction, params.seed) != "train":
            continue
        for passage_id, ids in article_passages(article, tokenizer, max_tokens):
            copies = mix_copies(params.mix[RAW], passage_id, params.seed)
            most = max(most, copies)
            if repeat == 0 and kinds is not None:
                kinds.add(RAW, copies, len(ids))
            if copies > repeat:
                writer.add(ids, [1] * len(ids), passage_id, article["title"], kind=RAW)
    return most


def encode_splits(
    read_records: Callable[[str], Iterable[JsonlLine]],
    read_articles: Callable[[str], Iterable[JsonlLine]],
    encoder: ChatEncoder,
    writers: dict[str, SplitWriter],
    plan: SplitPlan,
    drops: Drops,
    guard: RecallQuestionIndex,
    params: EncodeParams,
    max_passage: int,
) -> tuple[int, set[int], KindCounts, KindCounts, list[int] | None]:
    """Every record into its split's writer: the records once, again for each copy a weight
    above 1 asks (in later passes, so two copies never sit side by side), then the raw passages
    of the trained articles when mix.raw > 0. `read_*(description)` opens a fresh pass over the
    input. Returns (kept, leaked recall questions, records per kind, per weighted prompt type,
    the raw records' span)."""
    kinds, types = KindCounts(), KindCounts()
    kept, leaked, most = encode_records(
        read_records("encode"), encoder, writers, plan, drops, guard, kinds, types=types
    )
    for repeat in range(1, most):  # the most copies pass 0 saw: a product of weights of 4 is 4 passes
        encode_records(read_records(f"encode repeat {repeat}"), encoder, writers, plan, drops, repeat=repeat)
    if not params.mix[RAW]:
        return kept, leaked, kinds, types, None
    first_raw, repeat, passes = writers["train"].records, 0, 1
    while repeat < passes:  # a raw weight of 2.0 asks for a second pass over the articles
        articles = read_articles(f"encode raw {repeat + 1}")
        most = encode_raw_text(articles, encoder.tokenizer, writers["train"], params, max_passage, kinds, repeat)
        passes, repeat = max(passes, most), repeat + 1
    return kept, leaked, kinds, types, [first_raw, writers["train"].records]
