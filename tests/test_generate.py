import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from corpus.articles import parse_sample_article
from corpus.windows import article_sentences, window_article
from stages import generate
from synth.generate import plan_items, select_types
from synth.prompt_types import load_registry
from synth.work_store import DONE, FAILED, STALE_TEMP_SECONDS, WorkStore
from tests.conftest import ROOT, write_params
from tests.generate_fakes import EchoBackend

PROMPT = "{tag}TYPE: {name}\nARTICLE: {{article}}\nTEXT: {{text}}\nReply with Question: and Answer: lines."
CHAIN = (
    '    chain_question: "QUESTION ONLY\\nARTICLE: {article}\\nTEXT: {text}"\n'
    '    chain_answer: "ANSWER THIS: {question}\\nARTICLE: {article}\\nTEXT: {text}"\n'
)


def registry(*names, bad=(), decline=()):
    entries = []
    for name in names:
        tag = "BAD-TYPE " if name in bad else "DECLINE " if name in decline else ""
        entries.append(
            f"  - name: {name}\n    family: question\n    kind: qa\n    format: qa\n"
            f"    prompt: {json.dumps(PROMPT.format(tag=tag, name=name))}\n{CHAIN}"
        )
    return "types:\n" + "".join(entries)


def windows(n=6):
    return [
        {"id": f"w{i:03d}", "article": f"Battle {i}", "section": "", "start": 0, "sentences": [text], "text": text}
        for i, text in ((i, f"Battle {i} was fought in 194{i % 6}.") for i in range(n))
    ]


def setup(tmp_path, types_yaml, n_windows=6, **params):
    (tmp_path / "types.yaml").write_text(types_yaml)
    (tmp_path / "windows.jsonl").write_text("".join(json.dumps(w) + "\n" for w in windows(n_windows)))
    # One draw per (window, type): the counts below are about items, not samples.
    overrides = {
        "generate.backend": "tests.generate_fakes:echo",
        "generate.concurrency": 4,
        "generate.samples_per_type": 1,
    }
    overrides.update({f"generate.{k}": v for k, v in params.items()})
    return write_params(tmp_path, overrides)


def args(tmp_path, params, *extra):
    return [
        "--params",
        str(params),
        "--windows",
        str(tmp_path / "windows.jsonl"),
        "--types",
        str(tmp_path / "types.yaml"),
        "--store",
        str(tmp_path / "store"),
        "--out",
        str(tmp_path / "generated.jsonl"),
        "--metrics",
        str(tmp_path / "generate.json"),
        *extra,
    ]


def run(tmp_path, params, *extra):
    code = generate.main(args(tmp_path, params, *extra))
    out = tmp_path / "generated.jsonl"
    records = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return code, records


def test_every_window_times_type_once_and_a_rerun_does_no_work(tmp_path):
    params = setup(tmp_path, registry("alpha", "beta"))
    EchoBackend.calls = 0
    code, records = run(tmp_path, params)
    assert code == 0
    assert len(records) == 12 and EchoBackend.calls == 12
    assert len({r["id"] for r in records}) == 12
    first = (tmp_path / "generated.jsonl").read_bytes()
    record = records[0]
    assert record["kind"] == "qa" and record["type"] == "alpha" and record["window"] == "w000"
    assert [m["role"] for m in record["messages"]] == ["user", "assistant"]
    assert record["messages"][0]["content"] == "What is notable about Battle 0 (alpha)?"
    assert record["meta"]["generator"] == "fake:echo" and record["meta"]["mode"] == "single"

    code, _ = run(tmp_path, params)
    assert code == 0 and EchoBackend.calls == 12  # nothing regenerated
    assert (tmp_path / "generated.jsonl").read_bytes() == first


def test_a_new_prompt_type_or_window_generates_only_what_is_new(tmp_path):
    params = setup(tmp_path, registry("alpha"))
    EchoBackend.calls = 0
    run(tmp_path, params)
    assert EchoBackend.calls == 6
    (tmp_path / "types.yaml").write_text(registry("alpha", "gamma"))
    _, records = run(tmp_path, params)
    assert EchoBackend.calls == 12 and len(records) == 12
    (tmp_path / "windows.jsonl").write_text("".join(json.dumps(w) + "\n" for w in windows(7)))
    _, records = run(tmp_path, params)
    assert EchoBackend.calls == 14 and len(records) == 14


def test_unusable_replies_go_to_the_failed_folder_and_are_retried_only_when_asked(tmp_path):
    params = setup(tmp_path, registry("alpha", "broken", bad={"broken"}))
    EchoBackend.calls = 0
    code, records = run(tmp_path, params)
    assert code == 0 and len(records) == 6
    failed = list(WorkStore(str(tmp_path / "store")).iter_failed())
    assert len(failed) == 6
    assert failed[0]["reason"] == "parse_missing_question"
    assert failed[0]["raw"] == "Here is a fine quiz item for you, enjoy."
    assert failed[0]["type"] == "broken"
    metrics = json.loads((tmp_path / "generate.json").read_text())
    assert metrics["failed"] == {"parse_missing_question": 6}
    assert metrics["per_type"]["broken"] == {"failed:parse_missing_question": 6}

    run(tmp_path, params)
    assert EchoBackend.calls == 12  # failures are not retried by default
    run(tmp_path, params, "--retry-failed")
    assert EchoBackend.calls == 18


def test_chain_mode_asks_twice_and_keeps_items_apart_from_single_mode(tmp_path):
    params = setup(tmp_path, registry("alpha"), mode="chain")
    EchoBackend.calls = 0
    code, records = run(tmp_path, params)
    assert code == 0 and EchoBackend.calls == 12 and len(records) == 6
    assert records[0]["messages"][0]["content"] == "Battle 0?"
    assert records[0]["messages"][1]["content"] == "It is described in Battle 0."
    assert records[0]["meta"]["mode"] == "chain"


def test_limit_and_weights_steer_what_runs_next(tmp_path):
    params = setup(tmp_path, registry("alpha", "beta"), n_windows=8, weights={"alpha": 3.0})
    EchoBackend.calls = 0
    code, records = run(tmp_path, params, "--limit", "8")
    assert code == 0 and EchoBackend.calls == 8
    by_type = {t: sum(r["type"] == t for r in records) for t in ("alpha", "beta")}
    assert by_type == {"alpha": 6, "beta": 2}
    assert json.loads((tmp_path / "generate.json").read_text())["pending"] == 8


def test_plan_is_deterministic_and_weight_zero_pauses_a_type(tmp_path):
    (tmp_path / "t.yaml").write_text(registry("alpha", "beta"))
    types = select_types(load_registry(tmp_path / "t.yaml"), (), {"beta": 0})
    first = plan_items(windows(), types, "single", {"x": 1}, seed=1)
    assert first == plan_items(windows(), types, "single", {"x": 1}, seed=1)
    assert {item.ptype for item in first} == {0}
    assert plan_items(windows(), types, "single", {"x": 1}, seed=2) != first


def test_unknown_type_or_backend_is_a_clear_error(tmp_path, caplog):
    params = setup(tmp_path, registry("alpha"), types=["alpha", "omega"])
    assert run(tmp_path, params)[0] == 2
    assert "unknown prompt type(s) omega" in caplog.text
    params = setup(tmp_path, registry("alpha"), backend="gpt-9")
    assert run(tmp_path, params)[0] == 2
    assert "unknown backend 'gpt-9'" in caplog.text


def test_temp_files_of_killed_writes_are_cleaned_by_the_next_run(tmp_path):
    params = setup(tmp_path, registry("alpha", "beta"))
    assert run(tmp_path, params)[0] == 0
    [item] = sorted((tmp_path / "store" / DONE).glob("*/*.json"))[:1]
    stale = item.with_name(f".{item.name}.k1ll3d.tmp")  # atomic_write's temp, its writer killed
    live = item.with_name(f".{item.name}.wr1t1ng.tmp")  # another run sharing the store, mid-write
    stale.write_text("{")
    live.write_text("{")
    old = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(stale, (old, old))
    assert run(tmp_path, params)[0] == 0
    assert not stale.exists() and live.exists()


@pytest.mark.slow
def test_kill_9_then_resume_loses_and_duplicates_nothing(tmp_path):
    params = setup(
        tmp_path, registry("alpha", "beta"), n_windows=20, backend="tests.generate_fakes:slow_echo", concurrency=2
    )
    env = {**os.environ, "FAKE_DELAY": "0.05", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stages.generate", *args(tmp_path, params)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    store = WorkStore(str(tmp_path / "store"))
    deadline = time.time() + 30
    while len(store.keys(DONE)) < 10 and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_at_kill = len(store.keys(DONE))
    assert 10 <= done_at_kill < 40, "the kill must land mid-run"
    assert not (tmp_path / "generated.jsonl").exists()

    EchoBackend.calls = 0
    code, records = run(tmp_path, params)
    assert code == 0
    assert EchoBackend.calls == 40 - done_at_kill  # only the missing items ran again
    assert len(records) == 40 and len({r["id"] for r in records}) == 40
    assert not store.keys(FAILED)


def test_the_store_can_live_at_an_fsspec_url(tmp_path):
    url = f"memory://ww2lm-test-{tmp_path.name}"
    params = setup(tmp_path, registry("alpha"), store_url=url)
    code, records = run(tmp_path, params)
    assert code == 0 and len(records) == 6
    assert len(WorkStore(url).keys(DONE)) == 6
    assert not (tmp_path / "store").exists()


def test_a_model_that_answers_none_is_a_counted_skip_not_a_failure(tmp_path):
    params = setup(tmp_path, registry("alpha", "nodate", decline={"nodate"}))
    code, records = run(tmp_path, params)
    assert code == 0 and len(records) == 6
    metrics = json.loads((tmp_path / "generate.json").read_text())
    assert metrics["per_type"]["nodate"] == {"skipped:model_declined": 6}
    assert metrics["failed"] == {}


def test_openai_backend_end_to_end_against_a_loopback_server(tmp_path):
    from tests.openai_server import OpenAIServer, garbage, ok

    with OpenAIServer(think=True) as server:
        server.script(garbage(), ok(content="Here is a great question about the battle."))
        params = setup(
            tmp_path,
            registry("alpha"),
            backend="openai",
            **{"openai.base_url": server.base_url, "openai.backoff_seconds": 0.01, "openai.timeout_seconds": 5.0},
        )
        code, records = run(tmp_path, params)
        assert all(r.body.get("chat_template_kwargs") == {"enable_thinking": False} for r in server.chat_requests)
    assert code == 0
    assert len(records) == 5  # the garbage reply was retried; the unlabelled reply is a failed item
    assert all(r["meta"]["generator"] == "openai:Qwen/Qwen3-4B" for r in records)
    assert all("<think>" not in m["content"] for r in records for m in r["messages"])
    [failed] = WorkStore(str(tmp_path / "store")).iter_failed()
    assert (
        failed["reason"] == "parse_missing_question" and failed["raw"] == "Here is a great question about the battle."
    )


def test_more_samples_per_type_add_items_and_keep_the_first_samples_keys(tmp_path):
    params = setup(tmp_path, registry("alpha"))
    EchoBackend.calls = 0
    _, one = run(tmp_path, params)
    params = setup(tmp_path, registry("alpha"), samples_per_type=3)
    _, three = run(tmp_path, params)
    assert EchoBackend.calls == 18  # 6 items, then only the 12 new samples
    # The echo backend answers every sample alike: later samples are counted duplicates.
    assert three == one
    per_type = json.loads((tmp_path / "generate.json").read_text())["per_type"]["alpha"]
    assert per_type["duplicate"] == 12
    items = plan_items(windows(), select_types(load_registry(tmp_path / "types.yaml"), (), {}), "single", {}, 1, 3)
    assert len({item.key for item in items}) == 18
    assert [item.sample for item in items[:6]] == [0] * 6  # every window's first sample runs first
    params = setup(tmp_path, registry("alpha"), samples_per_type=0)
    assert run(tmp_path, params)[0] == 2


def test_type_samples_set_the_draws_of_the_named_types_only(tmp_path):
    params = setup(tmp_path, registry("alpha", "beta"), type_samples={"beta": 3})
    EchoBackend.calls = 0
    assert run(tmp_path, params)[0] == 0
    assert EchoBackend.calls == 6 + 18  # alpha: samples_per_type 1; beta: 3 per window
    per_type = json.loads((tmp_path / "generate.json").read_text())["per_type"]
    assert per_type["beta"]["duplicate"] == 12 and "duplicate" not in per_type["alpha"]


def test_type_samples_of_no_draw_stop_the_stage_and_of_an_absent_type_are_named(tmp_path, caplog):
    params = setup(tmp_path, registry("alpha", "beta"), type_samples={"beta": 0})
    assert run(tmp_path, params)[0] == 2
    assert "type_samples.beta: expected a whole number >= 1" in caplog.text
    params = setup(tmp_path, registry("alpha", "beta"), type_samples={"gamma": 2})
    assert run(tmp_path, params)[0] == 0
    assert "generate.type_samples names types this run does not have: gamma" in caplog.text


# --- the LLM path: configuration errors, transient failures, dead servers ----------------


def openai_setup(tmp_path, server, n_windows=6, **params):
    openai = {"openai.base_url": server.base_url, "openai.model": "loopback-model", "openai.api_key_env": ""}
    openai |= {"openai.max_retries": 1, "openai.backoff_seconds": 0.01, "openai.max_backoff_seconds": 0.01}
    openai |= {"openai.timeout_seconds": 2.0}
    return setup(tmp_path, registry("alpha"), n_windows, backend="openai", **(openai | params))


def store_counts(tmp_path):
    store = WorkStore(str(tmp_path / "store"))
    return len(store.keys(DONE)), len(store.keys(FAILED))


def test_a_wrong_model_name_stops_the_run_and_stores_nothing(tmp_path, caplog):
    from tests.openai_server import OpenAIServer

    with OpenAIServer(check_model=True) as server:
        params = openai_setup(tmp_path, server, **{"openai.model": "Qwen/Qwen3-4B-typo"})
        code, records = run(tmp_path, params)
        assert code == 2 and records == []
        assert "the first 4 requests all failed with HTTP 400" in caplog.text
        assert "Qwen3-4B-typo` does not exist" in caplog.text and "generate.openai.model" in caplog.text
        assert len(server.chat_requests) == 4  # it stopped after the probe
        assert store_counts(tmp_path) == (0, 0)
        params = openai_setup(tmp_path, server)  # the name fixed: a plain rerun does everything
        code, records = run(tmp_path, params)
    assert code == 0 and len(records) == 6


def test_a_missing_key_stops_the_run_and_a_fixed_key_completes_it(tmp_path, caplog, monkeypatch):
    from tests.openai_server import OpenAIServer

    monkeypatch.delenv("WW2LM_TEST_KEY", raising=False)
    with OpenAIServer(api_key="sk-right") as server:
        params = openai_setup(tmp_path, server, **{"openai.api_key_env": "WW2LM_TEST_KEY"})
        code, _ = run(tmp_path, params)
        assert code == 2 and "failed with HTTP 401" in caplog.text and "api_key_env" in caplog.text
        assert store_counts(tmp_path) == (0, 0)
        monkeypatch.setenv("WW2LM_TEST_KEY", "sk-right")
        code, records = run(tmp_path, params)
    assert code == 0 and len(records) == 6


def test_one_refused_prompt_among_good_ones_is_an_item_failure(tmp_path):
    from tests.openai_server import OpenAIServer, error

    with OpenAIServer() as server:
        server.script(error(400, message="prompt too long"))
        code, records = run(tmp_path, openai_setup(tmp_path, server))
    assert code == 0 and len(records) == 5
    assert store_counts(tmp_path) == (5, 1)


def test_transient_failures_are_not_stored_and_a_plain_rerun_runs_them(tmp_path, caplog):
    from tests.openai_server import OpenAIServer, error

    with OpenAIServer() as server:
        params = openai_setup(tmp_path, server, concurrency=1)
        # Two attempts per item: three items give up, two on 503 and one on 429.
        server.script(*[error(503)] * 4, *[error(429)] * 2)
        code, records = run(tmp_path, params)
        assert code == 1 and len(records) == 3
        assert "3 of 6 items could not be run (http_503: 2, http_429: 1)" in caplog.text
        assert "rerun the stage" in caplog.text
        assert store_counts(tmp_path) == (3, 0)
        code, records = run(tmp_path, params)  # no --retry-failed
    assert code == 0 and len(records) == 6


def test_a_server_that_dies_mid_run_exits_non_zero_and_a_rerun_finishes(tmp_path, caplog):
    from tests.openai_server import OpenAIServer

    server = OpenAIServer(latency=0.05).start()
    params = openai_setup(tmp_path, server, 40, concurrency=2)
    killer = threading.Timer(0.6, server.stop)  # after the probe and some items
    killer.start()
    code, records = run(tmp_path, params)
    killer.join()
    done, failed = store_counts(tmp_path)
    assert code == 1 and 4 <= done < 40 and failed == 0
    assert f"{40 - done} of 40 items could not be run (connection" in caplog.text
    with OpenAIServer() as again:
        code, records = run(tmp_path, openai_setup(tmp_path, again, 40))
        assert len(again.chat_requests) == 40 - done  # only what the dead server left
    assert code == 0 and len(records) == 40


def test_chain_mode_skips_none_and_refusals_in_the_answer_call(tmp_path):
    from tests.openai_server import OpenAIServer, ok

    with OpenAIServer() as server:
        server.script(
            ok("Question: Who led the attack on Battle 0?"),
            ok("NONE"),
            ok("Question: Who led the attack on Battle 1?"),
            ok("As an AI language model, I cannot answer that."),
            ok("I'm sorry, but I can't help with that."),  # a refused question call
        )
        params = openai_setup(tmp_path, server, 3, mode="chain", concurrency=1)
        code, records = run(tmp_path, params)
    assert code == 0 and records == []
    per_type = json.loads((tmp_path / "generate.json").read_text())["per_type"]["alpha"]
    assert per_type == {"skipped:model_declined": 1, "skipped:model_refused": 2}


def test_a_run_where_every_item_failed_exits_non_zero(tmp_path, caplog):
    params = setup(tmp_path, registry("broken", bad={"broken"}))
    code, records = run(tmp_path, params)
    assert code == 1 and records == []
    assert "every one of the 6 items failed (parse_missing_question: 6)" in caplog.text


def test_a_window_without_sentences_is_named(tmp_path, caplog):
    params = setup(tmp_path, registry("alpha"))
    rows = windows(3)
    del rows[1]["sentences"]
    (tmp_path / "windows.jsonl").write_text("".join(json.dumps(w) + "\n" for w in rows))
    code, _ = run(tmp_path, params)
    assert code == 2
    assert "record 2 (window w001) is not a window: missing or wrong type: sentences" in caplog.text
    assert not (tmp_path / "store").exists()


# --- the rules backend: an item does not depend on the store's history --------------------


def sample_windows(n_articles):
    paths = sorted((ROOT / "data/sample").glob("*.md"))[:n_articles]
    articles = [parse_sample_article(p.read_text(), p.name) for p in paths]
    return [w for a in articles for w in window_article(a["title"], article_sentences(a), 8, 4)]


def rules_run(tmp_path, store, windows_list):
    (tmp_path / "windows.jsonl").write_text("".join(json.dumps(w) + "\n" for w in windows_list))
    params = write_params(
        tmp_path,
        {
            "generate.backend": "rules",
            "generate.samples_per_type": 1,
            # the types that draw distractors and names from the whole corpus
            "generate.types": [
                "contrast_person",
                "contrast_place",
                "wrong_person",
                "false_statement",
                "multiple_choice",
            ],
        },
    )
    argv = args(tmp_path, params)
    argv[argv.index("--store") + 1] = str(tmp_path / store)
    argv[argv.index("--types") + 1] = str(ROOT / "data/prompt_types.yaml")
    assert generate.main(argv) == 0
    return (tmp_path / "generated.jsonl").read_bytes()


@pytest.mark.slow
def test_an_incremental_rules_run_equals_a_fresh_one_byte_for_byte(tmp_path):
    small, full = sample_windows(6), sample_windows(12)
    rules_run(tmp_path, "store", small)  # a store from a smaller corpus...
    incremental = rules_run(tmp_path, "store", full)  # ...then articles added
    fresh = rules_run(tmp_path, "fresh", full)
    assert incremental.count(b"\n") > 100
    assert incremental == fresh
