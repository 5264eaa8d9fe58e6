import json
from collections import Counter

import pytest

from stages import contrast_swap
from synth.contrast_swap import SwapError, mirror_id, mirror_pair, order_metrics, question_order_correct_first


def contrastive(rid, question, options, correct=0, answer=None):
    return {
        "id": rid,
        "kind": "contrastive",
        "type": "contrast_person",
        "window": "w1",
        "article": "Battle of Stalingrad",
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer or f"{options[correct]}. Because the text says so."},
        ],
        "meta": {"generator": "rules", "options": options, "correct": correct, "feature": "person"},
    }


def qa(rid):
    return {
        "id": rid,
        "kind": "qa",
        "type": "who",
        "window": "w1",
        "article": "Battle of Stalingrad",
        "messages": [
            {"role": "user", "content": "Who led the 62nd Army?"},
            {"role": "assistant", "content": "Vasily Chuikov."},
        ],
        "meta": {"generator": "rules"},
    }


RECORDS = [
    qa("q1"),
    contrastive(
        "c1",
        "Who commanded the German 6th Army at Stalingrad, Friedrich Paulus or Erwin Rommel?",
        ["Friedrich Paulus", "Erwin Rommel"],
    ),
    contrastive("c2", "In which year did the 6th Army surrender, 1943 or 1942?", ["1943", "1942"]),
    qa("q2"),
    contrastive("c3", "Which city did the Red Army relieve, Leningrad or Stalingrad?", ["Stalingrad", "Leningrad"], 0),
]


def run(tmp_path, records, name="filtered.jsonl"):
    inp = tmp_path / name
    inp.write_text("".join(json.dumps(r) + "\n" for r in records))
    out, metrics = tmp_path / "swapped.jsonl", tmp_path / "contrast_swap.json"
    code = contrast_swap.main(["--in", str(inp), "--out", str(out), "--metrics", str(metrics)])
    return code, out, metrics


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def swap(question, options, correct=0):
    original, mirror, _ = mirror_pair(contrastive("x", question, options, correct), Counter())
    return original, mirror


def test_smoke_mirrors_follow_their_original_and_others_pass_through(tmp_path):
    code, out, metrics = run(tmp_path, RECORDS)
    assert code == 0
    records = read(out)
    assert [r["id"] for r in records] == [
        "q1",
        "c1",
        mirror_id("c1"),
        "c2",
        mirror_id("c2"),
        "q2",
        "c3",
        mirror_id("c3"),
    ]
    assert records[0] == RECORDS[0] and records[5] == RECORDS[3]
    mirror = records[2]
    assert mirror["messages"][0]["content"] == (
        "Who commanded the German 6th Army at Stalingrad, Erwin Rommel or Friedrich Paulus?"
    )
    assert mirror["messages"][1] == records[1]["messages"][1]  # same answer
    assert mirror["meta"]["options"] == ["Erwin Rommel", "Friedrich Paulus"] and mirror["meta"]["correct"] == 1
    assert mirror["meta"]["mirror_of"] == "c1" and mirror["meta"]["feature"] == "person"
    m = json.loads(metrics.read_text())
    assert m["contrastive_in"] == 3 and m["mirrors_made"] == 3 and m["contrastive_out"] == 6
    assert m["passed_through"] == 2 and m["records_out"] == 8 and m["correct_first_share"] == 0.5


def test_rerun_is_byte_identical_and_mirror_ids_are_stable(tmp_path):
    _, out, _ = run(tmp_path, RECORDS)
    first = out.read_bytes()
    _, out, _ = run(tmp_path, RECORDS)
    assert out.read_bytes() == first
    assert mirror_id("c1") == mirror_id("c1") != mirror_id("c2")


def test_correct_option_is_first_in_exactly_half(tmp_path):
    # the generator's order varies (c3 asks the correct option second): output is still 50/50
    _, out, metrics = run(tmp_path, RECORDS)
    records = [r for r in read(out) if r["kind"] == "contrastive"]
    assert sum(r["meta"]["correct"] == 0 for r in records) * 2 == len(records)
    assert sum(question_order_correct_first(r) for r in records) * 2 == len(records)
    assert json.loads(metrics.read_text())["options_reordered"] == 1


def test_meta_options_follow_the_question_order():
    original, mirror = swap(
        "Which city did the Red Army relieve, Leningrad or Stalingrad?", ["Stalingrad", "Leningrad"]
    )
    assert original["meta"] == {**original["meta"], "options": ["Leningrad", "Stalingrad"], "correct": 1}
    assert mirror["messages"][0]["content"] == "Which city did the Red Army relieve, Stalingrad or Leningrad?"
    assert mirror["meta"]["options"] == ["Stalingrad", "Leningrad"] and mirror["meta"]["correct"] == 0


@pytest.mark.parametrize(
    "question, options, expected",
    [
        (
            "Who surrendered at Stalingrad, Paulus or Friedrich Paulus?",
            ["Paulus", "Friedrich Paulus"],
            "Who surrendered at Stalingrad, Friedrich Paulus or Paulus?",
        ),
        (
            "Who surrendered at Stalingrad, Friedrich Paulus or Paulus?",
            ["Friedrich Paulus", "Paulus"],
            "Who surrendered at Stalingrad, Paulus or Friedrich Paulus?",
        ),
        ("Who surrendered in 1943, Paulus or Paul?", ["Paulus", "Paul"], "Who surrendered in 1943, Paul or Paulus?"),
        ("Who surrendered in 1943, Paul or Paulus?", ["Paulus", "Paul"], "Who surrendered in 1943, Paulus or Paul?"),
        (
            "Which unit was encircled, the 6th Army or the Army?",
            ["6th Army", "Army"],
            "Which unit was encircled, the Army or the 6th Army?",
        ),
        (
            "Which unit was encircled, Army or 6th Army?",
            ["6th Army", "Army"],
            "Which unit was encircled, 6th Army or Army?",
        ),
    ],
)
def test_options_contained_in_each_other(question, options, expected):
    original, mirror = swap(question, options)
    assert mirror["messages"][0]["content"] == expected
    assert swap(expected, mirror["meta"]["options"])[1]["messages"][0]["content"] == question  # an involution


@pytest.mark.parametrize(
    "question, options, expected",
    [
        # the choice is the last "X or Y"; other mentions stay where they are
        (
            "Was it Rommel, or was it Paulus, who took over Rommel's old command?",
            ["Paulus", "Rommel"],
            "Was it Paulus, or was it Rommel, who took over Rommel's old command?",
        ),
        (
            "Rommel or Paulus: who commanded at Stalingrad, Paulus or Rommel?",
            ["Paulus", "Rommel"],
            "Rommel or Paulus: who commanded at Stalingrad, Rommel or Paulus?",
        ),
        (
            "Paulus led the 6th Army; who led Army Group B, Weichs or Paulus?",
            ["Weichs", "Paulus"],
            "Paulus led the 6th Army; who led Army Group B, Paulus or Weichs?",
        ),
        (
            "Was it Paulus's or Rommel's army that was trapped?",
            ["Paulus", "Rommel"],
            "Was it Rommel's or Paulus's army that was trapped?",
        ),
        ("WHO LED THE 6TH ARMY, paulus or ROMMEL?", ["Paulus", "Rommel"], "WHO LED THE 6TH ARMY, ROMMEL or paulus?"),
        (
            "How many men were lost, 91,000 or 250,000?",
            ["91,000", "250,000"],
            "How many men were lost, 250,000 or 91,000?",
        ),
        (
            "Which country sent more, the U.S. or Britain?",
            ["U.S", "Britain"],
            "Which country sent more, the Britain or U.S.?",
        ),
    ],
)
def test_options_that_appear_several_times_or_in_other_shapes(question, options, expected):
    assert swap(question, options)[1]["messages"][0]["content"] == expected


@pytest.mark.parametrize(
    "question, options, reason",
    [
        ("Who commanded the 6th Army at Stalingrad?", ["Paulus", "Rommel"], "options_not_in_question"),
        ("Who surrendered at Stalingrad in 1943?", ["Paulus", "Paul"], "options_not_in_question"),
        ("Paulus surrendered; Rommel was in Africa. Who was it?", ["Paulus", "Rommel"], "no_choice_span"),
        ("Who led it, Paulus or paulus?", ["Paulus", "paulus"], "same_options"),
        ("Who led it, Paulus or Rommel or Manstein?", ["Paulus", "Rommel", "Manstein"], "not_binary"),
    ],
)
def test_records_that_cannot_be_mirrored_are_counted_skips(tmp_path, question, options, reason):
    with pytest.raises(SwapError, match=reason):
        mirror_pair(contrastive("x", question, options), Counter())
    code, out, metrics = run(tmp_path, [qa("q1"), contrastive("bad", question, options), RECORDS[1]])
    assert code == 0
    assert [r["id"] for r in read(out)] == ["q1", "c1", mirror_id("c1")]
    m = json.loads(metrics.read_text())
    assert m["dropped"] == {reason: 1} and m["correct_first_share"] == 0.5


def test_both_orders_of_one_question_in_the_input_give_one_pair(tmp_path):
    question = "Who commanded the German 6th Army at Stalingrad, Friedrich Paulus or Erwin Rommel?"
    flipped = "Who commanded the German 6th Army at Stalingrad, Erwin Rommel or Friedrich Paulus?"
    answer = "Friedrich Paulus. He commanded it."
    records = [
        contrastive("a", question, ["Friedrich Paulus", "Erwin Rommel"], 0, answer),
        contrastive("b", flipped, ["Erwin Rommel", "Friedrich Paulus"], 1, answer),
        contrastive("c", question.lower(), ["friedrich paulus", "erwin rommel"], 0, answer + " "),  # same, normalised
    ]
    code, out, metrics = run(tmp_path, records)
    assert code == 0
    assert [r["id"] for r in read(out)] == ["a", mirror_id("a")]
    m = json.loads(metrics.read_text())
    assert m["dropped"] == {"duplicate": 2} and m["mirrors_made"] == 1 and m["correct_first_share"] == 0.5


def test_no_contrastive_records_is_not_an_error(tmp_path):
    code, out, metrics = run(tmp_path, [qa("q1")])
    assert code == 0 and read(out) == [qa("q1")]
    assert json.loads(metrics.read_text())["correct_first_share"] is None


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"id": "q1", "kind": "qa"}\n{oops\n', "filtered.jsonl:2: invalid json"),
        (b'{"id": "q1", "kind": "qa"}\n\n"just a string"\n', "filtered.jsonl:3: not a record"),
        (b'{"id": "q1", "kind": "qa"}\n\xff\xfe\n', "filtered.jsonl:2: invalid utf8"),
    ],
)
def test_bad_input_is_a_clear_error_naming_file_and_line(tmp_path, caplog, content, message):
    inp = tmp_path / "filtered.jsonl"
    inp.write_bytes(content)
    out = tmp_path / "swapped.jsonl"
    code = contrast_swap.main(["--in", str(inp), "--out", str(out), "--metrics", str(tmp_path / "m.json")])
    assert code == 2
    assert message in caplog.text
    assert not out.exists()


def test_missing_input_is_a_clear_error(tmp_path, caplog):
    code = contrast_swap.main(
        [
            "--in",
            str(tmp_path / "nope.jsonl"),
            "--out",
            str(tmp_path / "o.jsonl"),
            "--metrics",
            str(tmp_path / "m.json"),
        ]
    )
    assert code == 2 and "nope.jsonl" in caplog.text


def test_the_stage_refuses_an_unbalanced_output():
    original, mirror = swap("Who led the 6th Army, Paulus or Rommel?", ["Paulus", "Rommel"])
    assert order_metrics([original, mirror]) == {
        "contrastive_out": 2,
        "correct_first_share": 0.5,
        "correct_asked_first_share": 0.5,
    }
    with pytest.raises(AssertionError, match="not 0.5"):
        order_metrics([original, mirror, original])


def test_without_mirrors_the_generator_order_stays_and_is_measured(tmp_path):
    """contrast_swap.mirror=false (recipe contrastive-no-swap): originals only, bias reported."""
    params = tmp_path / "params.yaml"
    params.write_text("contrast_swap:\n  mirror: false\n")
    inp, out, metrics = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "m.json"
    records = [contrastive("a", "Who led the 6th Army, Paulus or Rommel?", ["Paulus", "Rommel"]), qa("q1")]
    inp.write_text("".join(json.dumps(r) + "\n" for r in records))
    argv = ["--params", str(params), "--in", str(inp), "--out", str(out), "--metrics", str(metrics)]
    assert contrast_swap.main(argv) == 0
    assert [r["id"] for r in read(out)] == ["a", "q1"]
    m = json.loads(metrics.read_text())
    assert m["mirrors_made"] == 0 and m["correct_first_share"] == 1.0 and m["correct_asked_first_share"] == 1.0
