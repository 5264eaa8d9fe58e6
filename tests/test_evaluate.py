import json

import pytest

from evaluation.judge import Verdict
from evaluation.questions import positional_bias, sample_questions, to_question
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
    "evaluate.open_prompts": ["Tell me about the Eastern Front.", "Who was Erwin Rommel?"],
    "evaluate.device": "cpu",
}


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
    return {
        **paths,
        "model": root / "run/model/model.pt",
        "windows": windows,
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
        "--metrics": out / "eval.json",
        "--samples": out / "eval_samples.jsonl",
    }
    args.update({f"--{k}": v for k, v in replace.items()})
    return evaluate.main([str(x) for pair in args.items() for x in pair])


def read(out):
    rows = [json.loads(line) for line in (out / "eval_samples.jsonl").read_text().splitlines()]
    return json.loads((out / "eval.json").read_text()), rows


def test_smoke_heuristic_metrics_and_samples(data, tmp_path):
    assert run(data, tmp_path) == 0
    metrics, rows = read(tmp_path)
    for key in (
        "pass_rate",
        "questions",
        "per_type",
        "per_kind",
        "positional_bias",
        "answers",
        "historian",
        "val_loss",
        "val_ppl",
        "judge",
    ):
        assert key in metrics
    assert metrics["judge"] == "heuristic" and metrics["val_loss"] > 0 and metrics["val_ppl"] > 1
    q = metrics["questions"]
    assert q["total"] == 14 and q["pass"] + q["fail"] + q["unparsed"] + q["error"] == 14
    # stratified: both types present in equal shares; mirror pairs kept together
    assert {t: c["total"] for t, c in metrics["per_type"].items()} == {"contrast_place": 8, "what": 6}
    bias = metrics["positional_bias"]
    assert bias["first_total"] == bias["second_total"] == 4
    assert set(bias) == {"first_total", "second_total", "first_accuracy", "second_accuracy", "gap"}
    assert metrics["historian"]["count"] == 2 and 0 <= metrics["historian"]["stopped_share"] <= 1
    graded, historian = rows[:14], rows[14:]
    assert [r["question"] for r in historian] == FAST["evaluate.open_prompts"] and len(rows) == 16
    for row in graded:
        assert {"question", "reference", "answer", "verdict", "explanation"} <= row.keys()
        assert row["kind"] != "qpt" and row["article"] not in data["train_articles"]
    assert {r["correct_position"] for r in graded if r["kind"] == "contrastive"} == {"first", "second"}


def test_rerun_gives_identical_bytes(data, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    assert run(data, first) == 0 and run(data, second) == 0
    for name in ("eval.json", "eval_samples.jsonl"):
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
        "--metrics",
        str(tmp_path / "ck.json"),
        "--samples",
        str(tmp_path / "ck.jsonl"),
    ]
    assert evaluate.main(args) == 0
    assert run(data, tmp_path) == 0  # the final model.pt is the step-8 weights
    assert json.loads((tmp_path / "ck.json").read_text()) == json.loads((tmp_path / "eval.json").read_text())


def test_llm_judge_unparsed_and_errors_are_never_passes(data, tmp_path):
    with OpenAIServer() as server:
        # 12 passes, one reply without a verdict, one request that fails (400: not retried)
        server.script(*[ok(content="Same facts.\nVerdict: PASS")] * 12, ok(content="I cannot tell."), error(400))
        overrides = {
            "evaluate.judge": "llm",
            "evaluate.judge_backend": "openai",
            "evaluate.judge_concurrency": 4,
            "evaluate.openai.base_url": server.base_url,
            "evaluate.openai.api_key_env": "",
            "evaluate.openai.max_retries": 0,
            "evaluate.openai.backoff_seconds": 0.0,
        }
        assert run(data, tmp_path, overrides) == 0
        requests = server.chat_requests
    metrics, rows = read(tmp_path)
    q = metrics["questions"]
    assert (q["total"], q["pass"], q["unparsed"], q["error"], q["fail"]) == (14, 12, 1, 1, 0)
    assert metrics["pass_rate"] == round(12 / 14, 6)
    assert metrics["judge"].startswith("openai:") and q["error_reasons"] == {"http_400": 1}
    assert len(requests) == 14 and all(WINDOW_TEXT in r.body["messages"][-1]["content"] for r in requests)
    assert sorted(r["verdict"] for r in rows[:14]) == ["ERROR"] + ["PASS"] * 12 + ["UNPARSED"]


@pytest.mark.parametrize(
    ("replace", "overrides", "message"),
    [
        ({"model": "missing/model.pt"}, {}, "model not found"),
        ({"records": "missing.jsonl"}, {}, "not found"),
        ({}, {"evaluate.judge": "oracle"}, "evaluate.judge"),
        ({}, {"evaluate.max_new_tokens": 0}, "max_new_tokens"),
    ],
)
def test_bad_inputs_fail_clearly_and_write_nothing(data, tmp_path, caplog, replace, overrides, message):
    assert run(data, tmp_path, overrides, **{k: tmp_path / v for k, v in replace.items()}) == 2
    assert message in caplog.text
    assert not (tmp_path / "eval.json").exists() and not (tmp_path / "eval_samples.jsonl").exists()


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
