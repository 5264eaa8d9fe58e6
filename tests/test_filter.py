import json

import pytest
from lingua import Language, LanguageDetectorBuilder

from common.params import load_section
from quality.evidence import sentence_evidence, split_sentences
from quality.language import DefaultJudge, SeedJudge, build_detector
from quality.scripts import char_script
from quality.structure import structure_rejection, text_fields
from stages import filter as filter_stage
from tests.conftest import ROOT, write_params

LANGUAGES = load_section(ROOT / "params.yaml", "filter", filter_stage.FilterParams).languages


@pytest.fixture(scope="module")
def default():
    return DefaultJudge(LANGUAGES, min_margin=0.15, masked_min_words=3, english_override=2)


@pytest.fixture(scope="module")
def seed():
    return SeedJudge(1.0)


def check_of(judge, text):
    verdict = judge.judge([text])[0]
    return verdict.check if verdict else None


# --- the claims about the seed's rule, measured on lingua itself -------------------


def test_english_chinese_detector_calls_german_and_french_english_and_years_nothing():
    detector = build_detector(("ENGLISH", "CHINESE"))
    assert detector.compute_language_confidence("Der Angriff begann im Juni 1941.", Language.ENGLISH) == 1.0
    assert detector.compute_language_confidence("L'attaque a commencé en juin 1941.", Language.ENGLISH) == 1.0
    assert detector.compute_language_confidence("1944", Language.ENGLISH) == 0.0


def test_all_languages_detector_is_wrong_on_short_and_name_heavy_english(default):
    detector = LanguageDetectorBuilder.from_all_languages().build()
    text = "The Luftwaffe lost the Battle of Britain."
    assert detector.detect_language_of(text) == Language.GERMAN
    assert detector.compute_language_confidence(text, Language.ENGLISH) < 0.5
    assert detector.detect_language_of("Paulus.") == Language.LATIN
    detector.unload_language_models()
    # Whatever lingua calls a bare "Yes." (Tsonga in lingua 2.x), our rule keeps it: a short
    # answer has no foreign words and nothing left to score once names are set aside.
    assert check_of(default, "Yes.") is None


def test_seed_mode_passes_german_and_french_and_rejects_a_year(seed):
    assert check_of(seed, "Der Angriff begann im Juni 1941.") is None
    assert check_of(seed, "L'attaque a commencé en juin 1941.") is None
    assert check_of(seed, "1944") == "seed:english_confidence"
    assert check_of(seed, "The attack began 在 June.") == "seed:han"
    assert check_of(seed, "Paulus 㐀 surrendered.") is None  # CJK extension A is outside U+4E00-9FFF


# --- the default mode ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "1944",
        "Paulus.",
        "Yes.",
        "No.",
        "True",
        "False.",
        "Operation Barbarossa",
        "About 300,000 men.",
        "May 1942",
        "Charles de Gaulle",
        "Erich von Manstein",
        "El Alamein",
        "Los Alamos",
        "Kraków",
        "Łódź",
        "Festung Europa",
        "Blitzkrieg",
        "Sturmabteilung",
        "2nd SS Panzer Division Das Reich",
        "Field Marshal Friedrich Paulus",
        "The Luftwaffe lost the Battle of Britain.",
        "The Führer ordered the Wehrmacht to hold Düsseldorf.",
        "Kraków was occupied in September 1939.",
        "The Sturmabteilung, or SA, was the Nazi Party's paramilitary wing.",
        "Who was Władysław Sikorski?",
        "The Wehrmacht's motto Gott mit uns was stamped on the belt buckles of its soldiers.",
        "Dwight D. Eisenhower commanded Operation Overlord. It began on 6 June 1944.",
        "Fill in the blank: ____ commanded the Afrika Korps at El Alamein.",
        'The motto was "Gott mit uns".',  # a quoted phrase is set aside like a name
        "Which city was besieged for 872 days?\nA) Moscow\nB) Leningrad\nC) Stalingrad\nD) Kyiv",
    ],
)
def test_default_keeps_english(default, text):
    assert default.judge([text]) == [None]


@pytest.mark.parametrize(
    "text, check",
    [
        ("Der Angriff begann im Juni 1941.", "language:German"),
        ("La Luftwaffe a perdu la bataille d'Angleterre.", "language:French"),
        ("La ofensiva comenzó en junio de 1941.", "language:Spanish"),
        ("L'assedio di Leningrado durò quasi 900 giorni.", "language:Italian"),
        ("O cerco de Leningrado durou quase 900 dias.", "language:Portuguese"),
        ("Het beleg van Leningrad duurde bijna 900 dagen.", "language:Dutch"),
        ("Oblężenie Leningradu trwało prawie 900 dni.", "language:Polish"),
        ("Vrai.", "language:French"),
        ("Dowodził Flotą Pacyfiku.", "language:Polish"),  # only capitalised words: the "-ą" ending
        ('Die Antwort ist "1944".', "language:German"),
        ('Paulus. "Er kapitulierte am 31. Januar."', "language:German"),  # too little outside the quote
        ("The Battle of Kursk began in July 1943. Die Schlacht endete im August mit einem Sieg.", "language:German"),
        ("斯大林格勒战役于1943年2月结束。", "script:Han"),
        ("The German army reached 莫 the outskirts of Moscow.", "script:Han"),
        ("Paulus 㐀 surrendered in 1943.", "script:Han"),
        ("Operation Uranus 𠀀 encircled the 6th Army.", "script:Han"),
        ("The carrier アカギ was sunk at Midway.", "script:Katakana"),
        ("はい、そうです。", "script:Hiragana"),
        ("The answer is 파울루스.", "script:Hangul"),
        ("Паулюс командовал 6-й армией.", "script:Cyrillic"),
        ("Stаlingrad", "script:Cyrillic"),  # a Cyrillic а among Latin letters
        ("Rommel was defeated at العلمين in 1942.", "script:Arabic"),
        ("The answer is Κρήτη.", "script:Greek"),
        ("The answer is כן.", "script:Hebrew"),
        ("The Indian Army fought in Burma हाँ.", "script:Devanagari"),
        ("The Japanese army invaded ไทย in 1941.", "script:Thai"),
        ("Yes，it did.", "script:Fullwidth"),
        ("The battle began in 1942。", "script:CJK_Symbols"),
    ],
)
def test_default_rejects_each_kind_of_contamination_and_says_why(default, text, check):
    verdict = default.judge([text])[0]
    assert verdict is not None and verdict.check == check
    assert verdict.detail


def test_a_stray_hanzi_names_its_code_point(default, seed):
    text = "Paulus surrendered at Stalingrad on 31 January 的 1943."
    assert default.judge([text])[0].detail == "U+7684 '的' at char 47"
    assert check_of(seed, text) == "seed:han"


def test_unlisted_scripts_fall_back_to_their_unicode_name():
    assert char_script("Ꮳ") == "Cherokee" and char_script("é") is None and char_script("—") is None
    assert char_script("\x07") == "Control"


def test_sentences_split_at_ends_not_initials_or_ordinals():
    assert split_sentences("Dwight D. Eisenhower led. Order No. 227 came at 4 a.m. Yes!\nNext") == [
        "Dwight D. Eisenhower led.",
        "Order No. 227 came at 4 a.m. Yes!",
        "Next",
    ]
    assert split_sentences("Die Alliierten landeten am 6. Juni 1944.") == ["Die Alliierten landeten am 6. Juni 1944."]


def eval_texts(step: int = 1) -> list[str]:
    rows = [json.loads(line) for line in (ROOT / "data/filter_eval.jsonl").read_text().splitlines()]
    return [row["text"] for row in rows[::step]]


def test_batched_and_per_text_verdicts_agree():
    texts = eval_texts(7)
    batched = DefaultJudge(LANGUAGES, min_margin=0.15, masked_min_words=3, english_override=2)
    alone = DefaultJudge(LANGUAGES, min_margin=0.15, masked_min_words=3, english_override=2, memo_size=0)
    assert batched.judge(texts) == [alone.judge([t], parallel=False)[0] for t in texts]


@pytest.mark.parametrize("make", [
    lambda size: DefaultJudge(LANGUAGES, min_margin=0.15, masked_min_words=3, english_override=2, memo_size=size),
    lambda size: SeedJudge(1.0, memo_size=size),
], ids=["default", "seed"])  # fmt: skip
def test_repeated_texts_are_judged_once_with_the_verdicts_of_each_alone(make):
    texts = eval_texts(9)  # every kind, English and contaminated
    # Repeats inside a batch and across batches, and distinct texts sharing a sentence.
    shared = ["Zhukov took Berlin. Das ist richtig.", "Zhukov took Berlin.", "Das ist richtig."]
    first, second = texts[:70] + texts[:35] + shared * 2, texts[50:] + shared
    alone = [make(0).judge([t], parallel=False)[0] for t in first + second]
    assert sum(v is not None for v in alone) >= 10  # rejections too, so their details are compared
    judge = make(1000)
    judged = []
    original = judge._judge
    judge._judge = lambda todo, parallel: judged.append(list(todo)) or original(todo, parallel)
    assert judge.judge(first) + judge.judge(second) == alone
    assert judged == [list(dict.fromkeys(first)), [t for t in dict.fromkeys(second) if t not in first]]
    small = make(8)  # fewer than the distinct texts: most are judged again after eviction
    assert small.judge(first) + small.judge(second) == alone


def test_a_plainly_english_sentence_is_one_the_words_and_lingua_would_pass(default):
    checked = 0
    for text in eval_texts():
        for sentence in split_sentences(text):
            if default._words(sentence) is None:
                evidence = sentence_evidence(sentence)
                assert default._by_words(evidence) is None, sentence
                assert evidence.english >= default.english_override, sentence  # lingua not asked
                checked += 1
    assert checked >= 50


# --- structure ------------------------------------------------------------------------------


def record(question="Who commanded the 6th Army at Stalingrad?", answer="Friedrich Paulus.", **meta):
    return {
        "id": "r1",
        "kind": "qa",
        "type": "who",
        "window": "w1",
        "article": "Battle of Stalingrad",
        "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
        "meta": {"generator": "rules", "mode": "single", "family": "question", **meta},
    }


@pytest.mark.parametrize(
    "rec, field, check",
    [
        (record(answer="   "), "messages[1].content", "structure:empty"),
        (record(options=["Paulus", ""]), "meta.options[1]", "structure:empty"),
        (record(answer="Paulus " * 400), "messages[1].content", "structure:too_long"),
        (record(answer="<think>The text says Paulus.</think> Paulus."), "messages[1].content", "structure:think"),
        (record(answer="Paulus.<|im_end|>"), "messages[1].content", "structure:chat_tag"),
        (record(answer="Paulus.\nQuestion: Who else?"), "messages[1].content", "structure:label"),
        (record(answer="**Paulus** commanded it."), "messages[1].content", "structure:markup"),
        (record(answer="- Paulus\n- Seydlitz"), "messages[1].content", "structure:markup"),
        (record(answer="Paulus commanded it.[3]"), "messages[1].content", "structure:markup"),
        (record(answer="<b>Paulus</b>"), "messages[1].content", "structure:markup"),
        (
            record(answer="Who commanded the 6th Army at Stalingrad?"),
            "messages[1].content",
            "structure:repeats_question",
        ),
        (
            record(answer="Who commanded the 6th Army at Stalingrad? It was Paulus."),
            "messages[1].content",
            "structure:repeats_question",
        ),
        (record(answer="NONE"), "messages[1].content", "content:none"),
        (record(answer="As an AI language model, I cannot know that."), "messages[1].content", "content:refusal"),
        (record(answer="I'm sorry, but I can't help with that."), "messages[1].content", "content:refusal"),
        (record(answer="According to the text, it was Paulus."), "messages[1].content", "content:source_reference"),
        (record(answer="The passage does not say who."), "messages[1].content", "content:source_reference"),
        (
            record(question="Who, in the given excerpt, led the 6th Army?"),
            "messages[0].content",
            "content:source_reference",
        ),
        ({"id": "x", "messages": "Paulus"}, None, "structure:malformed"),
        (["not", "a", "record"], None, "structure:malformed"),
    ],
)
def test_structural_checks(rec, field, check):
    rejection = structure_rejection(rec, text_fields(rec, ("generator", "mode", "family")), 2000)
    assert (rejection.field, rejection.check) == (field, check)


@pytest.mark.parametrize(
    "answer",
    [
        "The text of the Potsdam Declaration demanded unconditional surrender.",
        "The passage of the Lend-Lease Act in March 1941 let Britain buy arms on credit.",
        "None of the German divisions escaped the pocket.",
        "Paulus was sorry to surrender, but he could not break out.",
    ],
)
def test_history_that_only_looks_like_a_content_problem_is_kept(answer):
    rec = record(answer=answer)
    assert structure_rejection(rec, text_fields(rec, ("generator", "mode", "family")), 2000) is None


def test_a_true_false_answer_restating_the_statement_is_fine():
    rec = record("True or false: The battle began in 1942.", "False. The battle began in 1943.", label=False)
    assert structure_rejection(rec, text_fields(rec, ("generator", "mode", "family", "label")), 2000) is None


# --- the stage ------------------------------------------------------------------------------


def line(rec) -> bytes:
    return (json.dumps(rec, ensure_ascii=False) + "\n").encode()


def run(tmp_path, lines: list[bytes], qpt: list[bytes] | None = None, **overrides):
    inp = tmp_path / "generated.jsonl"
    inp.write_bytes(b"".join(lines))
    more = []
    if qpt is not None:
        (tmp_path / "qpt.jsonl").write_bytes(b"".join(qpt))
        more = ["--in", str(tmp_path / "qpt.jsonl")]
    params = write_params(tmp_path, {f"filter.{k}": v for k, v in overrides.items()})
    out, rejects, metrics = tmp_path / "filtered.jsonl", tmp_path / "rejects", tmp_path / "filter.json"
    code = filter_stage.main(
        [
            "--params",
            str(params),
            "--in",
            str(inp),
            *more,
            "--out",
            str(out),
            "--rejects",
            str(rejects),
            "--eval",
            str(ROOT / "data/filter_eval.jsonl"),
            "--metrics",
            str(metrics),
        ]
    )
    return code, out, rejects, metrics


GOOD = [
    record(),
    record("When did Operation Barbarossa begin?", "1941"),
    record("Was Paulus or Rommel the commander at Stalingrad?", "Paulus.", options=["Paulus", "Rommel"], correct=0),
]
BAD = [
    record(answer="Der Angriff begann im Juni 1941."),
    record(answer="保卢斯。"),
    record(options=["Paulus", "Роммель"], correct=0),
    record(answer="<think>hmm</think>"),
]


def test_main_smoke_rejects_folder_and_byte_identical_rerun(tmp_path):
    code, out, rejects, metrics = run(tmp_path, [line(r) for r in GOOD + BAD])
    assert code == 0
    assert [json.loads(x)["messages"][1]["content"] for x in out.read_text().splitlines()] == [
        "Friedrich Paulus.",
        "1941",
        "Paulus.",
    ]
    assert sorted(p.name for p in rejects.iterdir()) == [
        "language__German.jsonl",
        "script__Cyrillic.jsonl",
        "script__Han.jsonl",
        "structure__think.jsonl",
    ]
    cyrillic = json.loads((rejects / "script__Cyrillic.jsonl").read_text())
    assert (cyrillic["stage"], cyrillic["field"], cyrillic["check"]) == ("filter", "meta.options[1]", "script:Cyrillic")
    assert cyrillic["messages"] == BAD[2]["messages"]  # the whole record is kept for review
    report = json.loads(metrics.read_text())
    assert (report["records_in"], report["records_out"], report["rejected"]) == (7, 3, 4)
    assert report["rejected_by_check"] == {
        "language:German": 1,
        "script:Cyrillic": 1,
        "script:Han": 1,
        "structure:think": 1,
    }
    first = {p: p.read_bytes() for p in [out, metrics, *rejects.iterdir()]}
    assert run(tmp_path, [line(r) for r in GOOD + BAD])[0] == 0
    assert {p: p.read_bytes() for p in [out, metrics, *rejects.iterdir()]} == first


def test_qpt_records_are_filtered_too(tmp_path):
    german = "Die 6. Armee wurde im Winter 1942 bei Stalingrad eingeschlossen und ergab sich im Februar 1943."
    english = "The 6th Army was encircled at Stalingrad in the winter of 1942 and surrendered in February 1943."
    qpt = [dict(record("whatt happenwd at stalingrad", text), kind="qpt", type="qpt") for text in (german, english)]
    for rec in qpt:  # a Q-PT record's labels, and its user turn typo'd on purpose from our template
        rec["meta"] |= {"style": "typo", "template": "whatt happenwd at {topic}"}
    code, out, rejects, metrics = run(tmp_path, [line(GOOD[0])], qpt=[line(r) for r in qpt])
    assert code == 0
    assert [json.loads(x)["messages"][1]["content"] for x in out.read_text().splitlines()] == [
        "Friedrich Paulus.",
        english,
    ]
    report = json.loads(metrics.read_text())
    assert report["records_in"] == 3 and report["rejected_by_kind"] == {"qpt": 1}
    assert report["rejected_by_check"] == {"language:German": 1}


def test_eval_targets_default_beats_seed(tmp_path):
    _, _, _, metrics = run(tmp_path, [line(r) for r in GOOD])
    scores = json.loads(metrics.read_text())["eval"]
    default, seed = scores["default"], scores["seed"]
    assert default["n_english"] >= 400 and default["n_contaminated"] >= 400
    assert default["false_accepts"] == 0
    assert default["false_reject_rate"] < 0.01
    assert seed["false_accept_rate"] > 0.5 and seed["per_kind"]["german"]["error_rate"] == 1.0
    assert seed["per_kind"]["short_answer"]["errors"] > 0  # years and numbers


def test_seed_mode_through_main(tmp_path):
    code, out, rejects, metrics = run(tmp_path, [line(r) for r in GOOD + BAD], mode="seed")
    assert code == 0
    report = json.loads(metrics.read_text())
    assert report["mode"] == "seed"
    assert report["rejected_by_check"]["seed:english_confidence"] >= 1  # "1941" as an answer
    assert any(json.loads(x)["messages"][1]["content"].startswith("Der Angriff") for x in out.read_text().splitlines())


def test_unreadable_lines_are_counted_and_the_rest_survive(tmp_path):
    code, out, rejects, metrics = run(
        tmp_path, [line(GOOD[0]), b"\xff\xfe not utf-8\n", b"{broken json\n", line(GOOD[1])]
    )
    assert code == 0
    assert len(out.read_text().splitlines()) == 2
    report = json.loads(metrics.read_text())
    assert report["rejected_by_check"] == {"input:invalid_json": 1, "input:invalid_utf8": 1}
    assert json.loads((rejects / "input__invalid_json.jsonl").read_text())["detail"] == "line 3"


@pytest.mark.parametrize(
    "overrides, message",
    [({"mode": "strict"}, "filter.mode"), ({"languages": ["ENGLISH", "KLINGON"]}, "unknown language 'KLINGON'")],
)
def test_bad_params_stop_before_any_work(tmp_path, overrides, message, caplog):
    code, out, _, _ = run(tmp_path, [line(GOOD[0])], **overrides)
    assert code == 2 and not out.exists()
    assert message in caplog.text


def test_an_empty_input_and_an_all_rejected_input_are_errors(tmp_path, caplog):
    assert run(tmp_path, [])[0] == 2 and "input is empty" in caplog.text
    code, out, rejects, _ = run(tmp_path, [line(BAD[0])])
    assert code == 2 and "every record was rejected" in caplog.text
    assert (rejects / "language__German.jsonl").exists()  # written anyway, for review


def test_an_english_correction_full_of_names_is_kept(default):
    """Seen in the pipeline: the words left without the names ("but") tie English with
    Indonesian, and the names alone make lingua say German; a tie must not reject."""
    text = (
        "It was not Lt. Cmdr. John C. Waldron but Field Marshal Erich von Manstein. In the summer of 1942 "
        "Field Marshal Erich von Manstein was sent north to plan a final assault."
    )
    assert check_of(default, text) is None
