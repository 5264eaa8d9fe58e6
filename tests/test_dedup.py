import json

import pytest

from quality.near_duplicates import NearDuplicateIndex, similarity
from stages import dedup
from tests.conftest import write_params

STALINGRAD = "the German 6th Army surrender at Stalingrad after the Soviet encirclement in Operation Uranus"


def record(rid, question, answer, ptype="when", kind="qa", article="Operation Uranus"):  # a trained article
    return {
        "id": rid,
        "kind": kind,
        "type": ptype,
        "window": "w1",
        "article": article,
        "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
        "meta": {"generator": "rules"},
    }


SURRENDER = "Who surrendered the German 6th Army at Stalingrad on 31 January 1943 after the encirclement, Paulus or {}?"
SURRENDER_ANSWER = "Paulus. Paulus surrendered the German 6th Army at Stalingrad on 31 January 1943."
RECORDS = [
    record("a", f"In the history of the battle, when did {STALINGRAD}?", "On 2 February 1943."),
    # only the prefix changed: removed
    record("b", f"According to the history of the battle, when did {STALINGRAD}?", "On 2 February 1943."),
    # the same fact asked by another prompt type: kept (a different question on purpose)
    record("c", f"In the history of the battle, when did {STALINGRAD}?", "On 2 February 1943.", ptype="fill_blank"),
    # a distractor changed: removed
    record("d", SURRENDER.format("Rommel"), SURRENDER_ANSWER, "contrast_person", "contrastive"),
    record("e", SURRENDER.format("Manstein"), SURRENDER_ANSWER, "contrast_person", "contrastive"),
    # a different question of the same type: kept
    record("f", "When did Operation Uranus begin?", "On 19 November 1942."),
    # Q-PT records repeat their window on purpose: passed through
    record("q1", "Tell me about Stalingrad.", STALINGRAD, "qpt", kind="qpt"),
    record("q2", "What happened at Stalingrad?", STALINGRAD, "qpt", kind="qpt"),
]
EXAM = {
    "id": "x1",
    "article": "Operation Uranus",
    "question": "When did Operation Uranus begin?",
    "options": ["November 1942", "June 1941"],
    "answer": 0,
}


def run(tmp_path, records, overrides=None, exam=(EXAM,)):
    params = write_params(tmp_path, overrides)
    inp, out, metrics = tmp_path / "filtered.jsonl", tmp_path / "deduped.jsonl", tmp_path / "dedup.json"
    inp.write_text("".join(json.dumps(r) + "\n" for r in records))
    exams = tmp_path / "exams"
    exams.mkdir(exist_ok=True)
    (exams / "quiz.jsonl").write_text("".join(json.dumps(e) + "\n" for e in exam))
    args = ["--params", str(params), "--in", str(inp), "--exams", str(exams), "--out", str(out)]
    code = dedup.main([*args, "--metrics", str(metrics)])
    kept = [json.loads(line)["id"] for line in out.read_text().splitlines()] if out.exists() else None
    return code, kept, json.loads(metrics.read_text()) if metrics.exists() else None


def test_prefix_and_distractor_variants_go_other_types_and_qpt_stay(tmp_path):
    code, kept, metrics = run(tmp_path, RECORDS)
    assert code == 0
    assert kept == ["a", "c", "d", "f", "q1", "q2"]
    assert metrics["dropped"] == {"near_duplicate": 2}
    assert metrics["compared"] == 6 and metrics["removed_share"] == round(2 / 6, 4)
    assert metrics["per_type"]["contrast_person"] == {"in": 2, "removed": 1}
    assert metrics["left"] == {"same_type": 0, "any_type": 1, "any_type_share": 0.25}  # c repeats a's text
    # the exam question is a training question (f): reported, not removed
    assert metrics["train_vs_eval"]["exam"] == {"questions": 1, "near_duplicates_in_train": 1}


def test_rerun_gives_identical_bytes(tmp_path):
    run(tmp_path, RECORDS)
    first = (tmp_path / "deduped.jsonl").read_bytes(), (tmp_path / "dedup.json").read_bytes()
    run(tmp_path, RECORDS)
    assert ((tmp_path / "deduped.jsonl").read_bytes(), (tmp_path / "dedup.json").read_bytes()) == first


def test_threshold_one_removes_only_exact_copies(tmp_path):
    copy = dict(RECORDS[0], id="a2")
    _, kept, _ = run(tmp_path, [*RECORDS[:2], copy], {"dedup.threshold": 1.0})
    assert kept == ["a", "b"]


def test_unseen_articles_near_training_questions_are_reported(tmp_path):
    # val_fraction 0.99: (almost) every article is held out; one article trains
    titles = [f"Article {i}" for i in range(40)]
    from dataset.recall_split import article_split

    train = [t for t in titles if article_split(t, 0.5, 1941) == "train"][0]
    held = [t for t in titles if article_split(t, 0.5, 1941) == "val"][0]
    records = [
        record("t", f"When did {STALINGRAD}?", "1943.", article=train),
        record("v", f"So when did {STALINGRAD}?", "In 1943.", ptype="who", article=held),
    ]
    _, _, metrics = run(tmp_path, records, {"encode.val_fraction": 0.5, "encode.seed": 1941})
    assert metrics["train_vs_eval"]["unseen"] == {"questions": 1, "near_duplicates_in_train": 1}


@pytest.mark.parametrize(
    ("overrides", "bad_records", "message"),
    [
        ({"dedup.threshold": 0.0}, None, "dedup.threshold: must be in (0, 1]"),
        ({"encode.val_fraction": "some"}, None, "encode.val_fraction: needed to report the unseen split"),
        (None, [RECORDS[0], {"id": "z", "kind": "qa"}], "record 2 is not a chat record"),
    ],
    ids=["threshold", "val_fraction", "record"],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, caplog, overrides, bad_records, message):
    code, kept, metrics = run(tmp_path, bad_records or RECORDS, overrides)
    assert code == 2 and kept is None and metrics is None
    assert message in caplog.text


def test_index_finds_what_brute_force_finds_and_refuses_a_key_twice():
    texts = [
        f"who commanded the {n}th army at {p} in {y}"
        for n in range(1, 8)
        for p in ("Kiev", "Orel")
        for y in (1941, 1943)
    ]
    for threshold in (0.6, 0.8, 0.95):
        index = NearDuplicateIndex(threshold)
        for number, text in enumerate(texts):
            index.add(number, text)
        for probe in texts:
            expected = [n for n, t in enumerate(texts) if similarity(probe, t) >= threshold]
            assert index.near(probe) == expected
    with pytest.raises(ValueError, match="added twice"):
        index.add(0, texts[0])
    index.discard(0)
    assert 0 not in index.near(texts[0])


def test_blanks_of_one_sentence_with_other_answers_are_two_facts(tmp_path):
    sentence = (
        "Fill in the blank: {} the first wave of {} aircraft, led by Cmdr. Mitsuo Fuchida, reached {} shortly "
        "before 8:00 a.m. local time, and Fuchida radioed the code words to signal complete surprise."
    )
    pearl = "In the history of the Attack on Pearl Harbor,"
    records = [
        record("n", sentence.format(pearl, "____", "Oahu"), "183", "fill_blank"),
        # the same text to 0.89, another fact: kept (the old rule removed it)
        record("p", sentence.format(pearl, "183", "____"), "Oahu", "fill_blank"),
        # only the prefix of p changed, the same answer: removed
        record("p2", sentence.format(pearl.replace("In", "According to"), "183", "____"), "Oahu", "fill_blank"),
    ]
    code, kept, metrics = run(tmp_path, records)
    assert code == 0
    assert kept == ["n", "p"]
    assert metrics["left"]["same_type"] == 0
