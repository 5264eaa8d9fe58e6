import json
import shutil

import pytest

from evaluation.judge import Verdict
from evaluation.key_scores import key_scores
from evaluation.questions import positional_bias, sample_questions, to_question
from evaluation.splits import index_questions
from stages import encode as tokenize
from stages import evaluate, pack
from stages import train as train_stage
from tests.conftest import write_params
from tests.openai_server import OpenAIServer, error, ok
from tests.tokenizer_helpers import write_jsonl
from tests.train_helpers import build_training_data, train_args

pytestmark = pytest.mark.slow  # trains or loads a model: left out of make test-fast

WINDOW_TEXT = "The source window the question was written from."
FAST = {
    "evaluate.max_questions": 14,
    "evaluate.max_new_tokens": 12,
    "evaluate.open_max_new_tokens": 12,
    "evaluate.open_prompts": [
        {"prompt": "Tell me about the Eastern Front.", "article": "x"},
        {"prompt": "Who was Erwin Rommel?", "article": "Erwin Rommel"},
    ],
    "evaluate.device": "cpu",
}


def exam_item(item_id: str, article: str) -> dict:
    options = ["1943", "1944", "1945", "1946"]
    return {"id": item_id, "article": article, "question": f"When did {article} end?", "options": options, "answer": 0}


def contrast_pair(title: str, n: int) -> list[dict]:
    """A contrastive record and its contrast-swap mirror (options swapped, correct second)."""
    rival = "the Battle of Nowhere"
    records = []
    for options, correct, suffix in (([title, rival], 0, "a"), ([rival, title], 1, "b")):
        records.append(
            {
                "id": f"c{n}{suffix}",
                "kind": "contrastive",
                "type": "contrast_place",
                "window": "w",
                "article": title,
                "messages": [
                    {"role": "user", "content": f"Which article is this, {options[0]} or {options[1]}?"},
                    {"role": "assistant", "content": f"{title}. It is the article {title}."},
                ],
                "meta": {"options": options, "correct": correct} | ({"mirror_of": f"c{n}a"} if correct else {}),
            }
        )
    return records


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """build_training_data plus contrastive pairs and a qpt record on the val articles,
    re-tokenized and re-packed, a window file, and a model trained 8 steps."""
    root = tmp_path_factory.mktemp("eval-data")
    paths = build_training_data(root)
    meta = json.loads((paths["tokens"] / "meta.json").read_text())
    records = [json.loads(line) for line in paths["records"].read_text().splitlines()]
    for n, title in enumerate(meta["splits"]["val"]["article_titles"] * 2):
        records += contrast_pair(title, n)
    qpt = dict(
        records[0], id="q0", kind="qpt", type="tell_me_about", article=meta["splits"]["val"]["article_titles"][0]
    )
    write_jsonl(paths["records"], [*records, qpt])
    args = [
        "--params",
        str(paths["params"]),
        "--tokenizer",
        str(paths["tokenizer"]),
        "--in",
        str(paths["records"]),
        "--out",
        str(paths["tokens"]),
        "--metrics",
        str(root / "tokenize.json"),
    ]
    assert tokenize.main(args) == 0
    assert (
        pack.main(
            [
                "--params",
                str(paths["params"]),
                "--tokens",
                str(paths["tokens"]),
                "--out",
                str(paths["packed"]),
                "--metrics",
                str(root / "pack.json"),
            ]
        )
        == 0
    )
    assert train_stage.main(train_args(paths, root / "run")) == 0
    windows = write_jsonl(root / "windows.jsonl", [{"id": "w", "article": "x", "section": "", "text": WINDOW_TEXT}])
    exams = root / "exams"
    exams.mkdir()
    articles = [meta["splits"]["train"]["article_titles"][0], meta["splits"]["val"]["article_titles"][0]]
    write_jsonl(exams / "quiz.jsonl", [exam_item(f"e{i}", article) for i, article in enumerate(articles)])
    return {
        **paths,
        "model": root / "run/model/model.pt",
        "windows": windows,
        "exams": exams,
        "run": root / "run",
        "train_articles": set(meta["splits"]["train"]["article_titles"]),
    }


def run(data, out, overrides=None, **replace):
    params = write_params(out, {**FAST, **(overrides or {})})
    args = {
        "--params": params,
        "--model": data["model"],
        "--tokenizer": data["tokenizer"],
        "--tokens": data["tokens"],
        "--records": data["records"],
        "--windows": data["windows"],
        "--packed": data["packed"],
        "--exams": data["exams"],
        "--metrics": out / "eval.json",
        "--samples": out / "eval_samples.jsonl",
        "--scores": out / "eval_scores.json",
    }
    args.update({f"--{k}": v for k, v in replace.items()})
    return evaluate.main([str(x) for pair in args.items() for x in pair])


def read(out):
    rows = [json.loads(line) for line in (out / "eval_samples.jsonl").read_text().splitlines()]
    return json.loads((out / "eval.json").read_text()), rows


def test_smoke_heuristic_metrics_and_samples(data, tmp_path):
    assert run(data, tmp_path) == 0
    metrics, rows = read(tmp_path)
    assert set(metrics["splits"]) == {"recall", "verbatim", "unseen", "exam", "exam_unseen"}
    for name in ("recall", "verbatim", "unseen"):
        split = metrics["splits"][name]
        assert {"pass_rate", "n", "per_type", "baselines", "questions", "positional_bias"} <= split.keys()
        assert set(split["baselines"]) == {"always_true", "first_option", "echo", "chance"}
        assert split["baselines"]["echo"]["n"] == split["n"]
    assert metrics["splits"]["verbatim"]["n"] == metrics["splits"]["recall"]["n"] > 0
    unseen = metrics["splits"]["unseen"]
    assert unseen["n"] == 14 and unseen["questions"]["total"] == 14
    # stratified: both types present in equal shares; mirror pairs kept together
    assert {t: c["total"] for t, c in unseen["per_type"].items()} == {"contrast_place": 8, "what": 6}
    # the first option is right exactly once per mirror pair; chance on two options is 0.5
    assert unseen["baselines"]["first_option"] == {"pass_rate": 0.5, "n": 8}
    assert unseen["baselines"]["chance"] == 0.5 and unseen["positional_bias"]["first_total"] == 4
    for name in ("exam", "exam_unseen"):
        exam = metrics["splits"][name]
        assert exam["n"] == 1 and exam["chance"] == 0.25
        assert {"ll_acc", "ll_acc_norm", "generated_acc", "generated_acc_no_options", "baselines"} <= exam.keys()
        assert exam["ll_acc"] in (0.0, 1.0) and exam["baselines"]["first_option"]["pass_rate"] == 1.0
    contrastive = metrics["contrastive"]
    assert contrastive["split"] == "recall" and set(contrastive) == {"split", "generated", "ll"}
    assert {"acc", "gap", "n"} <= contrastive["ll"].keys() and contrastive["ll"]["n"] == contrastive["generated"]["n"]
    assert metrics["historian"]["count"] == 2 and 0 <= metrics["historian"]["stopped_share"] <= 1
    assert metrics["historian"]["missing_articles"] == ["Erwin Rommel"] and "grounded_share" in metrics["historian"]
    assert metrics["judge"] == "heuristic" and metrics["val_loss"] > 0 and metrics["val_ppl"] > 1
    assert 0 <= metrics["answers"]["stopped_share"] <= 1
    graded, historian = [r for r in rows if r["split"] != "historian"], [r for r in rows if r["split"] == "historian"]
    assert [r["question"] for r in historian] == [p["prompt"] for p in FAST["evaluate.open_prompts"]]
    for row in graded:
        assert {"split", "question", "reference", "answer", "verdict", "explanation"} <= row.keys()
        assert row["kind"] != "qpt"
    assert all(r["article"] not in data["train_articles"] for r in graded if r["split"] == "unseen")
    assert {r["split"] for r in graded} == {"recall", "verbatim", "unseen", "exam", "exam_unseen"}
    exam_rows = [r for r in graded if r["split"] == "exam"]
    assert [r["type"] for r in exam_rows] == ["exam_options", "exam_no_options"] and "ll_pick" in exam_rows[1]
    scores = json.loads((tmp_path / "eval_scores.json").read_text())
    assert scores == key_scores(metrics) and [s["score"] for s in scores][:3] == ["recall", "verbatim", "unseen"]


def test_absent_recall_and_train_indexes_are_skipped_with_a_warning(data, tmp_path, caplog):
    tokens = tmp_path / "tokens"
    shutil.copytree(data["tokens"], tokens)
    (tokens / "recall.records.jsonl").unlink()
    (tokens / "train.records.jsonl").unlink()
    assert run(data, tmp_path, tokens=tokens) == 0
    metrics, _ = read(tmp_path)
    assert "recall" not in metrics["splits"] and metrics["splits"]["verbatim"]["n"] == 0
    assert metrics["contrastive"]["split"] == "unseen"
    assert "split=recall skipped" in caplog.text


def test_no_held_out_article_says_so_and_nothing_to_grade_is_an_error(data, tmp_path, caplog):
    tokens = tmp_path / "tokens"
    shutil.copytree(data["tokens"], tokens)
    (tokens / "val.records.jsonl").write_text("")  # what encode.val_fraction 0 writes
    assert run(data, tmp_path, tokens=tokens) == 0
    unseen = read(tmp_path)[0]["splits"]["unseen"]
    assert unseen["n"] == 0 and unseen["pass_rate"] is None  # was 0.0 on 0 questions
    assert "split=unseen has no questions (encode.val_fraction 0 holds out no article)" in caplog.text
    (tokens / "recall.records.jsonl").unlink()
    (tokens / "train.records.jsonl").unlink()
    (tmp_path / "eval.json").unlink()
    (tmp_path / "no-exams").mkdir()
    assert run(data, tmp_path, tokens=tokens, exams=tmp_path / "no-exams") == 2
    assert "no question to grade in any split and no exam item" in caplog.text
    assert not (tmp_path / "eval.json").exists()


def test_rerun_gives_identical_bytes(data, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    assert run(data, first) == 0 and run(data, second) == 0
    for name in ("eval.json", "eval_samples.jsonl", "eval_scores.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes()


def test_checkpoint_alias_takes_a_training_checkpoint(data, tmp_path):
    [checkpoint] = sorted((data["run"] / "checkpoints").glob("*/step-00000008.pt"))
    params = write_params(tmp_path, FAST)
    args = [
        "--params",
        str(params),
        "--checkpoint",
        str(checkpoint),
        "--tokenizer",
        str(data["tokenizer"]),
        "--tokens",
        str(data["tokens"]),
        "--records",
        str(data["records"]),
        "--windows",
        str(data["windows"]),
        "--packed",
        str(data["packed"]),
        "--exams",
        str(data["exams"]),
        "--metrics",
        str(tmp_path / "ck.json"),
        "--samples",
        str(tmp_path / "ck.jsonl"),
    ]
    assert evaluate.main(args) == 0
    assert run(data, tmp_path) == 0  # the final model.pt is the step-8 weights
    assert json.loads((tmp_path / "ck.json").read_text()) == json.loads((tmp_path / "eval.json").read_text())


def test_llm_judge_unparsed_and_errors_are_never_passes(data, tmp_path):
    tokens, exams = tmp_path / "tokens", tmp_path / "no-exams"
    shutil.copytree(data["tokens"], tokens)
    (tokens / "recall.records.jsonl").unlink()  # the unseen split only: 14 questions graded first
    (tokens / "train.records.jsonl").unlink()
    exams.mkdir()
    with OpenAIServer() as server:
        # 12 passes, one reply without a verdict, one request that fails (400: not retried); then
        # the 22 baseline answers (8 first options, 14 echoes), all passed
        server.script(
            *[ok(content="Same facts.\nVerdict: PASS")] * 12,
            ok(content="I cannot tell."),
            error(400),
            *[ok(content="Verdict: PASS")] * 22,
        )
        overrides = {
            "evaluate.judge": "llm",
            "evaluate.judge_backend": "openai",
            "evaluate.judge_concurrency": 1,  # in order: the split's answers, then the baselines
            "evaluate.openai.base_url": server.base_url,
            "evaluate.openai.api_key_env": "",
            "evaluate.openai.max_retries": 0,
            "evaluate.openai.backoff_seconds": 0.0,
        }
        assert run(data, tmp_path, overrides, tokens=tokens, exams=exams) == 0
        requests = server.chat_requests
    metrics, rows = read(tmp_path)
    unseen = metrics["splits"]["unseen"]
    q = unseen["questions"]
    assert (q["total"], q["pass"], q["unparsed"], q["error"], q["fail"]) == (14, 12, 1, 1, 0)
    assert unseen["pass_rate"] == round(12 / 14, 6) and unseen["baselines"]["echo"]["pass_rate"] == 1.0
    assert metrics["judge"].startswith("openai:") and q["error_reasons"] == {"http_400": 1}
    assert len(requests) == 36 and all(WINDOW_TEXT in r.body["messages"][-1]["content"] for r in requests)
    graded = [r for r in rows if r["split"] == "unseen"]
    assert sorted(r["verdict"] for r in graded) == ["ERROR"] + ["PASS"] * 12 + ["UNPARSED"]


@pytest.mark.parametrize(
    ("replace", "overrides", "message"),
    [
        ({"model": "missing/model.pt"}, {}, "model not found"),
        ({"records": "missing.jsonl"}, {}, "not found"),
        ({}, {"evaluate.judge": "oracle"}, "evaluate.judge"),
        ({}, {"evaluate.max_new_tokens": 0}, "max_new_tokens"),
        ({}, {"evaluate.open_prompts": ["Who was Erwin Rommel?"]}, "open_prompts"),
        ({"exams": "missing-exams"}, {}, "exams folder not found"),
    ],
)
def test_bad_inputs_fail_clearly_and_write_nothing(data, tmp_path, caplog, replace, overrides, message):
    assert run(data, tmp_path, overrides, **{k: tmp_path / v for k, v in replace.items()}) == 2
    assert message in caplog.text
    assert not (tmp_path / "eval.json").exists() and not (tmp_path / "eval_samples.jsonl").exists()


def test_a_model_whose_context_is_below_the_packed_width_is_refused_before_generating(data, tmp_path, caplog):
    packed = tmp_path / "packed"
    shutil.copytree(data["packed"], packed)
    meta = json.loads((packed / "meta.json").read_text())
    meta["context_length"] = 4096  # the tiny variant's context is 512
    (packed / "meta.json").write_text(json.dumps(meta))
    assert run(data, tmp_path, packed=packed) == 2
    assert "packed 4096 tokens wide (pack.context_length), more than the model's context_length" in caplog.text
    assert "asked=" not in caplog.text  # refused before any question was asked
    assert not (tmp_path / "eval.json").exists()


def test_records_that_were_not_tokenized_are_an_error(data, tmp_path, caplog):
    other = write_jsonl(
        tmp_path / "other.jsonl", [json.loads(line) for line in data["records"].read_text().splitlines()[:3]]
    )
    assert run(data, tmp_path, records=other) == 2
    assert "not in the records file" in caplog.text


def test_train_articles_are_refused(data):
    question = {
        "id": "x",
        "kind": "qa",
        "type": "who",
        "article": "A",
        "messages": [{"role": "user", "content": "Who?"}, {"role": "assistant", "content": "B."}],
    }
    from evaluation.questions import val_questions

    with pytest.raises(ValueError, match="training articles: A"):
        val_questions([question], [{"id": "x", "article": "A"}], {"A"})


def test_raw_text_rows_of_the_train_index_ask_nothing():
    messages = [{"role": "user", "content": "Who?"}, {"role": "assistant", "content": "B."}]
    record = {"id": "x", "kind": "qa", "type": "who", "article": "A", "messages": messages}
    index = [{"id": "x", "article": "A"}, {"id": "raw1", "article": "A", "kind": "raw"}, {"id": "x", "article": "A"}]
    assert [q["question"] for q in index_questions({"x": record}, index, "train")] == ["Who?"]
    with pytest.raises(ValueError, match="not in the records file"):
        index_questions({"x": record}, [{"id": "raw1", "article": "A"}], "train")


def questions(counts: dict[str, int], pairs: int = 0) -> list[dict]:
    records = [
        {
            "id": f"{t}{i}",
            "kind": "qa",
            "type": t,
            "article": "A",
            "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
        }
        for t, n in counts.items()
        for i in range(n)
    ]
    for n in range(pairs):
        records += contrast_pair("A", n)
    return [to_question(r) for r in records]


def test_sample_is_stratified_deterministic_and_keeps_mirror_pairs():
    pool = questions({"who": 50, "when": 3, "where": 20}, pairs=10)
    picked = sample_questions(pool, 20, seed=1)
    assert picked == sample_questions(pool, 20, seed=1) and picked != sample_questions(pool, 20, seed=2)
    types = [q["type"] for q in picked]
    assert (types.count("when"), types.count("contrast_place")) == (3, 6) and len(picked) == 20
    assert abs(types.count("who") - types.count("where")) <= 1
    groups = [q["group"] for q in picked if q["kind"] == "contrastive"]
    assert all(groups.count(g) == 2 for g in groups)
    assert [pool.index(q) for q in picked] == sorted(pool.index(q) for q in picked)  # input order
    assert sample_questions(pool, 0, seed=1) == pool


def test_positional_bias_gap():
    pool = questions({}, pairs=2)  # first, second, first, second
    verdicts = [Verdict(v, "") for v in ("PASS", "FAIL", "PASS", "PASS")]
    assert positional_bias(pool, verdicts) == {
        "first_total": 2,
        "second_total": 2,
        "first_accuracy": 1.0,
        "second_accuracy": 0.5,
        "gap": 0.5,
    }


def test_the_shipped_params_section_loads():
    from common.params import load_section
    from tests.conftest import ROOT

    params = load_section(ROOT / "params.yaml", "evaluate", evaluate.EvaluateParams)
    evaluate.check_params(params, "params.yaml:evaluate")
    assert params.judge == "heuristic" and params.temperature == 0.0 and len(params.open_prompts) >= 6
    sample = {p.stem.replace("_", " ") for p in (ROOT / "data/sample").glob("*.md")}
    assert {p["article"].lower() for p in params.open_prompts} <= {s.lower() for s in sample}
