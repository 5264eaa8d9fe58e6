"""The lm-evaluation-harness adapter: lm-eval's acc / acc_norm on our exam equal our own scorer's."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

lm_eval = pytest.importorskip("lm_eval")  # noqa: E402  (pinned in requirements.txt; skipped only outside the venv)
from lm_eval.evaluator import simple_evaluate  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

from evaluation.harness import TASKS_DIR, Ww2lmLM  # noqa: E402
from evaluation.loglik import ll_choice, option_logprobs  # noqa: E402
from tests.conftest import ROOT  # noqa: E402
from tests.inference_helpers import TOKENIZER_VOCAB, build_tokenizer, save_trained_format, tiny_gpt  # noqa: E402
from tools import harness as wrapper  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
EXAM = [json.loads(line) for line in (ROOT / "data/exams/sample.jsonl").read_text().splitlines()][:12]


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    folder = tmp_path_factory.mktemp("student")
    tokenizer = build_tokenizer(folder)
    model = save_trained_format(tiny_gpt(vocab_size=tokenizer.vocab_size, context_length=128), folder / "model.pt")
    return Ww2lmLM(model=str(model), tokenizer=str(folder / "tok"), device="cuda:0")  # no CUDA here: auto


def request(*args):
    return SimpleNamespace(args=args)


def test_the_adapter_scores_what_our_scorer_scores(student):
    assert student.tokenizer.vocab_size >= TOKENIZER_VOCAB - 100
    for item in EXAM[:3]:
        ours = option_logprobs(
            student.model, student.encoder, [{"role": "user", "content": item["question"]}], item["options"]
        )
        theirs = [lp for lp, _ in student.loglikelihood([request(item["question"], o) for o in item["options"]])]
        assert theirs == pytest.approx(ours, abs=1e-4)


@pytest.mark.slow
def test_lm_eval_acc_and_acc_norm_equal_ours_on_the_exam_task(student, tmp_path, monkeypatch):
    exam = tmp_path / "data/exams/sample.jsonl"
    exam.parent.mkdir(parents=True)
    exam.write_text("".join(json.dumps(item) + "\n" for item in EXAM))
    monkeypatch.chdir(tmp_path)  # the task's data_files is relative to where lm-eval runs
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    results = simple_evaluate(
        model=student, tasks=["ww2lm_exam"], task_manager=TaskManager(include_path=str(TASKS_DIR)), log_samples=False
    )
    got = results["results"]["ww2lm_exam"]
    picks = [
        ll_choice(
            option_logprobs(student.model, student.encoder, [{"role": "user", "content": i["question"]}], i["options"]),
            i["options"],
        )
        for i in EXAM
    ]
    acc = sum(p["pick"] == i["answer"] for p, i in zip(picks, EXAM, strict=True)) / len(EXAM)
    acc_norm = sum(p["pick_norm"] == i["answer"] for p, i in zip(picks, EXAM, strict=True)) / len(EXAM)
    assert got["acc,none"] == pytest.approx(acc) and got["acc_norm,none"] == pytest.approx(acc_norm)


def test_rolling_loglikelihood_scores_each_token_once(student):
    short = "The Battle of Midway was fought in June 1942."
    ids = student.tokenizer.encode(short)
    (total,) = student.loglikelihood_rolling([request(short)])
    assert total == pytest.approx(student._score([student.tokenizer.im_end_id], ids)[0], abs=1e-4)
    long = short + " " + " ".join([short] * 12)  # longer than the 128-token context: windows
    assert len(student.tokenizer.encode(long)) > student.config.context_length
    (long_total,) = student.loglikelihood_rolling([request(long)])
    assert long_total < total < 0


def test_generate_until_cuts_at_the_stop_string(student):
    (full,) = student.generate_until([request("Who won at Midway?", {"max_gen_toks": 12})])
    assert full
    stop = full[len(full) // 2 :][:2]
    (cut,) = student.generate_until([request("Who won at Midway?", {"max_gen_toks": 12, "until": [stop]})])
    assert cut == full[: full.find(stop)]


def test_the_wrapper_explains_itself_without_running_lm_eval(capsys):
    assert wrapper.main(["--help"]) == 0
    assert "--tasks ww2lm_exam" in capsys.readouterr().out
