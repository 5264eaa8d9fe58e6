"""The evaluate stage's judges: the offline heuristic on clear passes and clear fails, and the
llm judge against a real OpenAI-compatible server on 127.0.0.1 (tests/openai_server.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from evaluation.judge import HeuristicJudge, Verdict, extract_names, extract_numbers, summarise, tokens
from evaluation.judge_llm import LLMJudge, parse_verdict
from evaluation.judges import make_judge
from llm.openai_backend import OpenAIChat
from tests.openai_server import OpenAIServer, error, garbage, loopback_params, ok

WHEN = "When did Paulus surrender at Stalingrad?"
WHO = "Who commanded the German 6th Army at Stalingrad?"
HOW_MANY = "How many German soldiers were taken prisoner at Stalingrad?"
TF = "True or false: Paulus surrendered at Stalingrad in 1942."
CHOICE = "Who commanded the German 6th Army at Stalingrad, Friedrich Paulus or Erwin Rommel?"
MC = "Who commanded the German 6th Army at Stalingrad?\nA) Erwin Rommel\nB) Friedrich Paulus\nC) Walter Model"
SURRENDER = "Paulus surrendered on 31 January 1943."
PAULUS = "Friedrich Paulus commanded the 6th Army at Stalingrad."
PRISONERS = "About 91,000 German soldiers were taken prisoner."
TF_REF = "False. Paulus surrendered on 31 January 1943."
CHOICE_REF = "Friedrich Paulus. He led the 6th Army into Stalingrad in 1942."
WHY = "Why did the 6th Army not break out of the Stalingrad pocket?"
BREAKOUT = "Hitler forbade a breakout and ordered the army to hold its positions."
WINDOW = "On 31 January 1943 Field Marshal Friedrich Paulus surrendered the 6th Army at Stalingrad."

# --- heuristic --------------------------------------------------------------------------

PASSES = [
    (WHEN, SURRENDER, "Field Marshal Friedrich Paulus surrendered in January 1943, on the 31st."),
    (WHEN, "Field Marshal Friedrich Paulus surrendered in January 1943, on the 31st.", SURRENDER),
    (WHEN, SURRENDER, "Paulus's surrender came on January 31st, 1943, in the ruins of the city."),
    (WHO, PAULUS, "It was Paulus who commanded the Sixth Army there."),
    (WHO, PAULUS, "Paulus."),
    (WHO, PAULUS, "General Friedrich Paulus led the 6th Army at Stalingrad until he surrendered it."),
    (HOW_MANY, PRISONERS, "Roughly 91000 German soldiers were captured as prisoners."),
    (HOW_MANY, PRISONERS, "Ninety-one thousand German soldiers were taken prisoner."),
    ("How many tanks did the Germans lose?", "The Germans lost 1,500 tanks.", "1500 tanks."),
    ("How many troops were involved?", "About 1.5 million troops.", "Some 1,500,000 troops took part."),
    (
        "What was Operation Barbarossa?",
        "Operation Barbarossa was the German invasion of the Soviet Union, launched on 22 June 1941.",
        "It was Germany's invasion of the USSR, which began on June 22, 1941.",  # a name's alias
    ),
    (TF, TF_REF, "False."),
    (TF, TF_REF, "False, he surrendered in 1941."),  # graded on the label only
    (CHOICE, CHOICE_REF, "It was Friedrich Paulus."),
    (CHOICE, CHOICE_REF, "friedrich paulus!"),
    (CHOICE, CHOICE_REF, "Friedrich Paulus"),
    (MC, "B) Friedrich Paulus", "B"),
    (MC, "B) Friedrich Paulus", "(B) Friedrich Paulus"),
]


@pytest.mark.parametrize(("question", "reference", "answer"), PASSES)
def test_heuristic_clear_passes(question, reference, answer):
    verdict = HeuristicJudge().grade(question, reference, answer)
    assert verdict.verdict == "PASS", verdict.explanation


FAILS = [
    (WHEN, SURRENDER, "Paulus surrendered on 31 January 1942.", "years"),
    (WHEN, SURRENDER, "", "empty_answer"),
    (WHEN, SURRENDER, "  \n ", "empty_answer"),
    (WHEN, SURRENDER, "The Battle of Midway was a naval battle in the Pacific.", "years"),
    (WHO, PAULUS, "The Japanese navy lost four carriers near Midway.", "names"),
    (WHO, PAULUS, "Erich von Manstein commanded the 6th Army at Stalingrad.", "names"),
    (HOW_MANY, PRISONERS, "About 190,000 German soldiers were taken prisoner.", "numbers"),
    (HOW_MANY, PRISONERS, "About 91,000 German soldiers were taken prisoner, or perhaps 110,000.", "foreign_numbers"),
    # A rambling hedge holds the right year but offers others: the reference has one year.
    (WHEN, SURRENDER, "Paulus surrendered on 31 January in 1941, 1942 or 1943; sources differ.", "foreign_years"),
    (TF, TF_REF, "True, he surrendered in 1942.", "true_false"),
    (TF, TF_REF, "Paulus surrendered at Stalingrad.", "true_false"),
    (CHOICE, CHOICE_REF, "Erwin Rommel commanded it.", "choice"),
    (CHOICE, CHOICE_REF, "Walter Model.", "choice"),
    (MC, "B) Friedrich Paulus", "A) Erwin Rommel", "choice"),
    (MC, "B) Friedrich Paulus", "B) Erwin Rommel", "choice"),  # right letter, another option's text
    (TF, TF_REF, "That is not true: he surrendered in 1943.", "true_false"),  # no leading label
    (CHOICE, CHOICE_REF, "Paulus, not Rommel.", "choice"),  # the whole option is not named
    (CHOICE, CHOICE_REF, "Friedrich Paulus or Erwin Rommel.", "choice"),  # names both
    (
        "Did any German unit break out?",
        "No German unit broke out of the pocket.",
        "Some German units broke out of the pocket.",
        "negation",
    ),
    (WHY, BREAKOUT, "Because the winter was too cold and the fuel ran out.", "overlap"),
]


@pytest.mark.parametrize(("question", "reference", "answer", "check"), FAILS)
def test_heuristic_clear_fails_name_the_deciding_check(question, reference, answer, check):
    verdict = HeuristicJudge().grade(question, reference, answer)
    assert (verdict.verdict, verdict.details["check"]) == ("FAIL", check), verdict.explanation
    assert verdict.explanation.startswith(check)


def test_heuristic_pass_explains_overlap_and_scores_recall():
    verdict = HeuristicJudge(min_overlap=0.5).grade(WHEN, SURRENDER, SURRENDER)
    assert verdict == Verdict("PASS", verdict.explanation, 1.0, {"overlap": 1.0, "check": "overlap"})
    assert "recall 1.00 >= 0.50" in verdict.explanation


def test_heuristic_threshold_and_bad_inputs():
    # Recall counts what the reference adds to the question: hitler forbade breakout ordered hold
    # position; "army" is the question's. The answer has 3 of those 6.
    answer = "Hitler ordered them to hold."
    assert HeuristicJudge(min_overlap=0.5).grade(WHY, BREAKOUT, answer).score == 0.5
    assert HeuristicJudge(min_overlap=0.5).grade(WHY, BREAKOUT, answer).verdict == "PASS"
    assert HeuristicJudge(min_overlap=0.6).grade(WHY, BREAKOUT, answer).verdict == "FAIL"
    assert HeuristicJudge().grade(WHEN, "", "1943").verdict == "ERROR"  # a bad reference is not graded
    with pytest.raises(ValueError, match="min_overlap"):
        HeuristicJudge(min_overlap=1.5)


EXAM_Q = "When did the Battle of Stalingrad end?"


@pytest.mark.parametrize(
    ("options", "reference", "answer", "verdict"),
    [
        # the known false passes: one shared word ("19", "1943") used to count
        (["19 September", "19 June"], "19 September.", "19 June", "FAIL"),
        (["May 1943", "19 February 1943"], "May 1943.", "19 February 1943", "FAIL"),
        (["19 September", "19 June"], "19 September.", "Either 19 September or 19 June.", "FAIL"),
        (["19 September", "19 June"], "19 September.", "On 19 September.", "PASS"),
        (["May 1943", "19 May 1943"], "19 May 1943", "19 May 1943", "PASS"),  # the longer option only
        (["May 1943", "19 May 1943"], "May 1943", "19 May 1943", "FAIL"),
    ],
)
def test_contrastive_choice_needs_the_whole_option_and_no_other(options, reference, answer, verdict):
    got = HeuristicJudge().grade(EXAM_Q, reference, answer, options=options)
    assert (got.verdict, got.details["check"]) == (verdict, "choice"), got.explanation


MC_OPTIONS = ["1930", "1931", "1932", "1933"]


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [("C) 1932", "PASS"), ("C", "PASS"), ("(C)", "PASS"), ("1932", "PASS"), ("The answer is 1932.", "PASS")]
    + [("B) 1931", "FAIL"), ("C) 1931", "FAIL"), ("B", "FAIL"), ("1932 or 1933", "FAIL"), ("19", "FAIL")],
)
def test_multiple_choice_letter_or_whole_option(answer, verdict):
    question = "When?\nA) 1930\nB) 1931\nC) 1932\nD) 1933"
    got = HeuristicJudge().grade(question, "C) 1932", answer, options=MC_OPTIONS)
    assert got.verdict == verdict, got.explanation
    bare = HeuristicJudge().grade("When?", "1932", answer, options=MC_OPTIONS)  # options not shown
    assert bare.verdict == verdict, bare.explanation


def test_unparsed_true_false_and_empty_never_pass():
    judge = HeuristicJudge()
    assert judge.grade(TF, TF_REF, "").verdict == "FAIL"
    assert judge.grade(TF, TF_REF, "Maybe.").verdict == "FAIL"
    assert judge.grade(TF, "True. He did.", TF).verdict == "FAIL"  # the echoed question is no label
    assert judge.grade(TF, "True. He did.", "True").verdict == "PASS"


def test_heuristic_options_from_the_record_win_over_guessing():
    question = "Was the 6th Army led by Paulus or Manstein at Stalingrad?"  # no comma: extent guessed
    judge = HeuristicJudge()
    assert judge.grade(question, "Paulus.", "Manstein.").verdict == "FAIL"
    assert judge.grade(question, "Paulus.", "At Stalingrad it was Paulus.").verdict == "PASS"
    assert judge.grade(question, "Paulus.", "Paulus or Manstein.").verdict == "FAIL"
    options = ["Friedrich Paulus", "Erich von Manstein"]
    assert judge.grade(question, "Friedrich Paulus.", "Erich von Manstein", options=options).verdict == "FAIL"


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("1,500", {Decimal(1500)}),
        ("1.5 million", {Decimal(1_500_000)}),
        ("1,500,000", {Decimal(1_500_000)}),
        ("a million", {Decimal(1_000_000)}),
        ("three hundred thousand", {Decimal(300_000)}),
        ("twenty-five", {Decimal(25)}),
        ("the 31st and the Sixth Army", {Decimal(31), Decimal(6)}),
        ("one of them", set()),  # "one" alone is a pronoun
    ],
)
def test_number_normalisation(text, numbers):
    assert extract_numbers(text) == (set(), numbers)


def test_years_and_tokens():
    assert extract_numbers("from 1939 to 1945, in the 1940s; 1,943 tanks") == ({1939, 1945, 1940}, {Decimal(1943)})
    assert tokens("Paulus's armies lost 1,500 tanks") == ["paulus", "army", "lost", "1500", "tank"]
    assert tokens("1.5 million men") == tokens("1,500,000 men")


def test_names_drop_titles_and_sentence_starts():
    text = "Field Marshal Friedrich Paulus met General Zhukov. In January the Germans saw Erich von Manstein's men."
    assert [core for _, core in extract_names(text)] == [
        ["friedrich", "paulus"],
        ["zhukov"],
        ["erich", "von", "manstein"],
    ]


# --- llm judge: the verdict parser -------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("Same date and person.\nVerdict: PASS", "PASS"),
        ("Wrong year.\nVerdict: FAIL", "FAIL"),
        ("The answer matches.\n**Verdict:** PASS", "PASS"),
        ("The answer misses the date.\nVERDICT - FAIL", "FAIL"),
        ("Correct.\nFinal verdict: pass.", "PASS"),
        ("Verdict: PASS\nOn reflection the year is wrong.\nVerdict: FAIL", "FAIL"),  # the last line wins
        ("**Verdict:**\n\nFAIL", "FAIL"),
        ("<think>Verdict: FAIL</think>Fine.\nVerdict: PASS", "PASS"),
        ("Verdict: PASS or FAIL", "UNPARSED"),
        ("Verdict: not a pass", "UNPARSED"),
        ("The student is broadly right.", "UNPARSED"),
        ("Verdict:", "UNPARSED"),
    ],
)
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply)[0] == verdict


# --- llm judge: against a loopback server ------------------------------------------------


@pytest.fixture
def server():
    with OpenAIServer() as running:
        yield running


@pytest.fixture
def judge(server):
    params = loopback_params(server.base_url, model="judge-model", temperature=0.0, top_p=1.0, max_retries=1)
    with OpenAIChat(params, concurrency=2, sleep=lambda _: None) as backend:
        yield make_judge("llm", backend=backend)


def test_llm_judge_pass_and_the_request_shows_everything(server, judge):
    server.script(ok(content="The student gives the same date.\nVerdict: PASS"))
    verdict = judge.grade(WHEN, SURRENDER, "On 31 January 1943.", window_text=WINDOW)
    assert (verdict.verdict, verdict.explanation, verdict.score) == ("PASS", "The student gives the same date.", None)
    assert verdict.details["backend"] == "openai:judge-model"
    (request,) = server.chat_requests
    prompt = request.body["messages"][-1]["content"]
    for part in (WINDOW, WHEN, SURRENDER, "On 31 January 1943.", "Verdict: PASS"):
        assert part in prompt


@pytest.mark.parametrize(
    ("content", "verdict"),
    [
        ("The year is wrong.\nVerdict: FAIL", "FAIL"),
        ("Same facts.\n**Verdict:** PASS", "PASS"),
        ("Verdict: PASS\nWait, the day differs.\nVerdict: FAIL", "FAIL"),
        ("I cannot decide.", "UNPARSED"),
    ],
)
def test_llm_judge_verdicts(server, judge, content, verdict):
    server.script(ok(content=content))
    assert judge.grade(WHEN, SURRENDER, "In 1943.").verdict == verdict


def test_llm_judge_server_errors_after_retries_are_errors(server, judge):
    server.script(error(500), error(503), garbage(), garbage())
    first = judge.grade(WHEN, SURRENDER, "In 1943.")
    second = judge.grade(WHEN, SURRENDER, "In 1943.")
    assert (first.verdict, first.details["reason"]) == ("ERROR", "http_503")
    assert (second.verdict, second.details["reason"]) == ("ERROR", "bad_response")
    assert len(server.chat_requests) == 4  # one retry each, then given up


def test_summarise_counts_unparsed_and_errors_as_not_passed(server, judge):
    server.script(ok(content="Verdict: PASS"), ok(content="no verdict here"), error(500), error(500))
    verdicts = [judge.grade(WHEN, SURRENDER, "In 1943.") for _ in range(3)]
    verdicts.append(HeuristicJudge().grade(WHEN, SURRENDER, "In 1942."))
    summary = summarise(verdicts)
    assert {k: summary[k] for k in ("total", "pass", "fail", "unparsed", "error", "pass_rate")} == {
        "total": 4,
        "pass": 1,
        "fail": 1,
        "unparsed": 1,
        "error": 1,
        "pass_rate": 0.25,
    }
    assert summary["error_reasons"] == {"http_500": 1}
    assert summary["checks"] == {"years": 1}
    assert summarise([])["pass_rate"] is None  # nothing graded is not a rate of 0


def test_make_judge():
    assert isinstance(make_judge("heuristic", min_overlap=0.7), HeuristicJudge)
    assert make_judge("heuristic", min_overlap=0.7).min_overlap == 0.7
    with pytest.raises(ValueError, match="judge kind"):
        make_judge("oracle")
    with pytest.raises(ValueError, match="needs a backend"):
        make_judge("llm")
    params = loopback_params(
        "http://127.0.0.1:9/v1", model="m", temperature=0.0, top_p=1.0, max_tokens=8, timeout_seconds=0.5,
        max_retries=0, backoff_seconds=0.0, max_backoff_seconds=0.0,
    )  # fmt: skip
    judge = make_judge("llm", backend_params=params)
    assert isinstance(judge, LLMJudge) and judge.backend.name == "openai:m"
    judge.backend.close()
