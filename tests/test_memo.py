import pytest

from quality.memo import Memo


def counting(calls: list):
    def compute(keys: list) -> list:
        calls.append(list(keys))
        return [key.upper() for key in keys]

    return compute


def test_each_distinct_key_is_computed_once_and_answers_keep_input_order():
    calls = []
    memo = Memo(10)
    assert memo.each_once(["a", "b", "a", "c", "b"], counting(calls)) == ["A", "B", "A", "C", "B"]
    assert memo.each_once(["c", "d", "a"], counting(calls)) == ["C", "D", "A"]
    assert calls == [["a", "b", "c"], ["d"]]


def test_the_memo_keeps_at_most_size_keys_and_drops_the_least_recently_used():
    calls = []
    memo = Memo(2)
    memo.each_once(["a", "b"], counting(calls))
    memo.each_once(["a"], counting(calls))  # a is now more recent than b
    memo.each_once(["c"], counting(calls))  # b goes
    assert len(memo) == 2 and "a" in memo and "c" in memo and "b" not in memo
    assert memo.each_once(["b", "a"], counting(calls)) == ["B", "A"]
    assert calls == [["a", "b"], ["c"], ["b"]]
    assert len(memo) == 2


def test_size_zero_is_no_memo_every_key_computed_as_it_comes():
    calls = []
    memo = Memo(0)
    assert memo.each_once(["a", "a"], counting(calls)) == ["A", "A"]
    assert memo.each_once(["a"], counting(calls)) == ["A"]
    assert calls == [["a", "a"], ["a"]] and len(memo) == 0


def test_a_negative_size_is_refused():
    with pytest.raises(ValueError, match="memo size must be >= 0"):
        Memo(-1)
