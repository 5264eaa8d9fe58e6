"""Exam files, log-likelihood scoring (a fake model whose log-probs are set by hand), splits,
baselines and the historian's groundedness: no trained model needed."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from evaluation.exam import ExamError, exam_questions, read_exam_items, split_exam, with_options
from evaluation.historian import grounded_sentences, historian_metrics
from evaluation.judge import HeuristicJudge
from evaluation.loglik import continuation_logprob, ll_choice
from evaluation.report import baselines
from evaluation.splits import choose_splits

# A bigram "model": the next-token distribution depends on the current token only.
PROBS = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [1 / 3, 1 / 3, 1 / 3]])


class BigramModel(nn.Module):
    def __init__(self, context_length: int = 16):
        super().__init__()
        self.config = SimpleNamespace(context_length=context_length)
        self.table = nn.Parameter(PROBS.log())

    def forward(self, idx):
        return self.table[idx], None  # (B, T, vocab)


def test_continuation_logprob_is_the_hand_computed_sum():
    model = BigramModel()
    assert continuation_logprob(model, [0], [1, 1]) == pytest.approx(math.log(0.25) + math.log(0.8))
    assert continuation_logprob(model, [2, 0], [2]) == pytest.approx(math.log(0.25))
    # too long for the context: the oldest tokens go, the continuation is still scored whole
    assert continuation_logprob(BigramModel(context_length=2), [2, 2, 2, 0], [1, 1]) == pytest.approx(
        math.log(0.25) + math.log(0.8)
    )


def test_acc_takes_the_summed_logprob_and_acc_norm_the_logprob_per_character():
    picked = ll_choice([-2.0, -3.0, -9.0], ["ab", "abcdefgh", "a"])
    assert (picked["pick"], picked["pick_norm"]) == (0, 1)  # -3/8 > -2/2
    assert ll_choice([-1.0, -1.0], ["x", "y"])["pick"] == 0  # ties go to the earlier option


ITEM = {"id": "s1", "article": "Battle of Stalingrad", "question": "When did it end?", "answer": 2}
ITEM["options"] = ["1941", "1942", "1943", "1944"]


def test_exam_items_render_like_training_multiple_choice():
    [shown, bare] = exam_questions(ITEM)
    assert shown["question"] == with_options(ITEM) == "When did it end?\nA) 1941\nB) 1942\nC) 1943\nD) 1944"
    assert (shown["reference"], bare["reference"], bare["question"]) == ("C) 1943", "1943", "When did it end?")
    judge = HeuristicJudge()
    assert judge.grade(shown["question"], shown["reference"], "C) 1943", options=shown["options"]).verdict == "PASS"
    assert judge.grade(bare["question"], bare["reference"], "In 1942.", options=bare["options"]).verdict == "FAIL"
    [open_q] = exam_questions({"id": "o", "article": "A", "question": "Who?", "reference": "Paulus."})
    assert open_q["variant"] == "open" and open_q["options"] is None
    split = split_exam(read_exam_items([("a.jsonl", [ITEM])]), {"Battle of Stalingrad"})
    assert split["exam"] == [] and split["exam_unseen"][0]["exam"] == "a.jsonl"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"answer": 4}, "'answer' must be an option index"),
        ({"answer": True}, "'answer'"),
        ({"options": ["only one"]}, "'options'"),
        ({"question": ""}, "'question'"),
        ({"options": None}, "needs a 'reference'"),
    ],
)
def test_bad_exam_items_name_the_file_line_and_field(change, message):
    with pytest.raises(ExamError, match=message) as caught:
        read_exam_items([("quiz.jsonl", [ITEM, dict(ITEM, id="s2", **change)])])
    assert "quiz.jsonl:2" in str(caught.value)
    with pytest.raises(ExamError, match="duplicate id"):
        read_exam_items([("quiz.jsonl", [ITEM, ITEM])])


def record(rid: str, article: str, kind: str = "qa", question: str = "Who led?", reference: str = "Paulus.", **meta):
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": reference}]
    return {"id": rid, "kind": kind, "type": kind, "article": article, "messages": messages, "meta": meta}


def test_splits_and_baselines_on_a_tiny_fixture():
    records = [record(f"t{i}", "Trained") for i in range(10)]
    records += [record("r0", "Trained", "qa", "True or false: Paulus surrendered.", "True. He did.")]
    records += [record("r1", "Trained", "qa", "True or false: Rommel surrendered.", "False. Paulus did.")]
    q = "Who surrendered, Paulus or Rommel?"
    records += [record("v0", "Held", "contrastive", q, "Paulus.", options=["Paulus", "Rommel"], correct=0)]
    records += [record("v1", "Held", "contrastive", q, "Rommel.", options=["Paulus", "Rommel"], correct=1)]
    records += [record("v2", "Held", "qpt")]  # never graded
    by_id = {r["id"]: r for r in records}
    index = {
        "val": [{"id": i} for i in ("v0", "v1", "v2")],
        "recall": [{"id": "r0"}, {"id": "r1"}],
        "train": [{"id": f"t{i}"} for i in range(10)],
    }
    splits = choose_splits(by_id, index, {"Trained"}, max_questions=0, seed=1)
    assert [len(splits[s]) for s in ("recall", "verbatim", "unseen")] == [2, 2, 2]  # verbatim as big as recall
    assert splits["verbatim"] == choose_splits(by_id, index, {"Trained"}, 0, seed=1)["verbatim"]
    assert "recall" not in choose_splits(by_id, index | {"recall": None}, {"Trained"}, 0, seed=1)
    with pytest.raises(ValueError, match="val questions from training articles: Held"):
        choose_splits(by_id, index, {"Held"}, 0, seed=1)
    with pytest.raises(ValueError, match="1 recall record"):
        choose_splits(by_id, index | {"recall": [{"id": "gone"}]}, {"Trained"}, 0, seed=1)
    judge = HeuristicJudge()
    recall = baselines(judge, splits["recall"], {})
    assert recall["always_true"] == {"pass_rate": 0.5, "n": 2} and recall["first_option"]["n"] == 0
    assert recall["chance"] is None and recall["echo"]["pass_rate"] == 0.0
    unseen = baselines(judge, splits["unseen"], {})
    assert unseen["first_option"] == {"pass_rate": 0.5, "n": 2} and unseen["chance"] == 0.5
    assert unseen["always_true"]["n"] == 0 and unseen["echo"]["pass_rate"] == 0.0  # names both options


def test_groundedness_counts_sentences_mostly_made_of_the_articles_words():
    article = "Paulus surrendered the 6th Army at Stalingrad on 31 January 1943."
    assert grounded_sentences("Paulus surrendered at Stalingrad. Bananas grow on trees in Peru.", article) == (1, 2)
    metrics, per_prompt = historian_metrics(
        [{"prompt": "p", "article": "A"}, {"prompt": "q", "article": "Missing"}],
        [{"text": "Paulus surrendered.", "stopped": True, "answer_tokens": 3}] * 2,
        {"A": article},
    )
    assert (metrics["grounded_share"], metrics["sentences"], metrics["missing_articles"]) == (1.0, 1, ["Missing"])
    assert per_prompt == [1.0, None] and metrics["stopped_share"] == 1.0
