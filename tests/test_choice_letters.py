import copy

from synth.choice_letters import balance_choice_letters, move_correct
from synth.prompt_types import PARSERS


def choice_record(i, reply_letter="A"):
    options = [f"Paulus {i}", "Rommel", "Manstein", "Guderian"]
    reply = (
        f"Question: Who commanded the 6th Army in battle {i}?\n"
        + "\n".join(f"{letter}) {option}" for letter, option in zip("ABCD", options, strict=True))
        + f"\nAnswer: {reply_letter}"
    )
    parsed = PARSERS["multiple_choice"](reply)
    return {
        "id": f"r{i}",
        "kind": "qa",
        "type": "multiple_choice",
        "messages": [{"role": "user", "content": parsed.question}, {"role": "assistant", "content": parsed.answer}],
        "meta": {"generator": "rules", **parsed.meta},
    }


def test_every_letter_is_correct_a_quarter_of_the_time_and_the_fact_is_kept():
    records = [choice_record(i) for i in range(40)]  # every one answered A
    before = copy.deepcopy(records)
    letters = balance_choice_letters(records, {"multiple_choice"}, seed=1939)
    assert letters == {"A": 10, "B": 10, "C": 10, "D": 10}
    for old, new in zip(before, records, strict=True):
        options, correct = new["meta"]["options"], new["meta"]["correct"]
        assert options[correct] == old["meta"]["options"][old["meta"]["correct"]]  # the same right answer
        assert sorted(options) == sorted(old["meta"]["options"])
        assert new["messages"][0]["content"].split("\n")[0] == old["messages"][0]["content"].split("\n")[0]
        # the rewritten record is what the parser would make of a reply with that letter
        reply = new["messages"][0]["content"].replace("Who", "Question: Who", 1) + f"\nAnswer: {'ABCD'[correct]}"
        assert PARSERS["multiple_choice"](reply).answer == new["messages"][1]["content"]


def test_balance_is_seeded_and_repeatable():
    a, b, c = ([choice_record(i, "B") for i in range(8)] for _ in range(3))
    balance_choice_letters(a, {"multiple_choice"}, seed=1)
    balance_choice_letters(b, {"multiple_choice"}, seed=1)
    balance_choice_letters(c, {"multiple_choice"}, seed=2)
    assert a == b
    assert [r["meta"]["correct"] for r in a] != [r["meta"]["correct"] for r in c]


def test_other_types_and_unparsed_questions_are_left_alone():
    other = dict(choice_record(0), type="contrast_person")
    broken = choice_record(1)
    broken["messages"][0]["content"] = "Who commanded the 6th Army?"  # options not in the question
    records = [copy.deepcopy(other), copy.deepcopy(broken)]
    assert balance_choice_letters(records, {"multiple_choice"}, seed=1) == {"unbalanced": 1}
    assert records == [other, broken]
    assert move_correct(broken, 2) is None
