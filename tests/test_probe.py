"""The teacher probe: weak spots per article / window / type, priorities, and generate reading
them: a student that fails one article's questions puts that article's windows first."""

from __future__ import annotations

import json

import pytest

from common.params import ParamsError
from evaluation.judge import Verdict
from evaluation.probe import priorities, weak_spots
from stages import generate as generate_stage
from synth.items import WorkItem
from synth.priorities import prioritise, read_priorities
from synth.prompt_types import PromptType
from synth.work_store import DONE, WorkStore
from tests.conftest import ROOT, write_params
from tests.openai_server import OpenAIServer, ok
from tests.tokenizer_helpers import write_jsonl
from tools import probe

ARTICLES = ("Battle of Midway", "Siege of Leningrad")
DATES = {"Battle of Midway": "4 June 1942", "Siege of Leningrad": "8 September 1941"}


def question(qid: str, article: str, window: str, qtype: str = "when") -> dict:
    return {"id": qid, "article": article, "window": window, "type": qtype, "question": f"When? {qid}",
            "reference": "In 1942.", "kind": "qa"}  # fmt: skip


def verdict(passed: bool) -> Verdict:
    return Verdict("PASS" if passed else "FAIL", "test")


def test_weak_spots_rank_groups_worst_first_and_keep_failed_examples():
    questions = [question("a", "A", "w1"), question("b", "A", "w1", "who"), question("c", "B", "w2"),
                 question("d", "B", "w3", "who")]  # fmt: skip
    answers = [{"text": t} for t in ("x", "y", "z", "u")]
    report = weak_spots(questions, answers, [verdict(False), verdict(False), verdict(True), Verdict("UNPARSED", "")])
    assert (report["asked"], report["failed"], report["fail_rate"]) == (4, 3, 0.75)
    assert [(r["name"], r["fail_rate"]) for r in report["by_article"]] == [("A", 1.0), ("B", 0.5)]
    assert [r["name"] for r in report["by_window"]] == ["w1", "w3", "w2"]  # an unparsed verdict is no pass
    assert [(r["name"], r["failed"]) for r in report["by_type"]] == [("who", 2), ("when", 1)]
    assert [e["id"] for e in report["worst_examples"]] == ["a", "b", "d"]  # the worst article's first
    weights = priorities(report, boost=3.0)
    assert weights["windows"] == {"w1": 4.0, "w3": 4.0, "w2": 1.0} and weights["types"] == {"who": 4.0, "when": 2.5}
    with pytest.raises(ValueError, match="no questions"):
        weak_spots([], [], [])


def ptype(name: str) -> PromptType:
    return PromptType(name=name, family="f", kind="qa", format="qa", prompt="p")


def test_prioritise_moves_heavy_windows_forward_and_keeps_everything():
    windows = [{"id": f"w{i}"} for i in range(4)]
    items = [WorkItem(key=f"k{i}", window=i % 4, ptype=0) for i in range(16)]
    ordered = prioritise(items, windows, [ptype("when")], {"windows": {"w3": 4.0, "w1": 2.0}, "types": {}})
    assert sorted(i.key for i in ordered) == sorted(i.key for i in items)  # order only: nothing lost
    assert [i.window for i in ordered] == [3] * 4 + [1] * 4 + [0, 2] * 4
    assert [i.key for i in ordered[:4]] == ["k3", "k7", "k11", "k15"]  # the plan's order among equals
    assert prioritise(items, windows, [ptype("when")], {"windows": {}, "types": {}}) == items


@pytest.mark.parametrize(
    "content, message",
    [
        ("{", "not valid JSON"),
        ('{"windows": {"w": 0}}', "windows.w = 0"),
        ('{"types": []}', "'types' must map"),
        ('{"windows": {"w": "high"}}', "not a positive number"),
    ],  # fmt: skip
)
def test_a_bad_priorities_file_names_the_problem(tmp_path, content, message):
    path = tmp_path / "priorities.json"
    path.write_text(content)
    with pytest.raises(ParamsError, match=message):
        read_priorities(path)
    with pytest.raises(ParamsError, match="not found"):
        read_priorities(tmp_path / "missing.json")


@pytest.fixture
def pipeline(tmp_path):
    """Two articles of three windows each, a when-question per window held out as recall."""
    windows, records = [], []
    for article in ARTICLES:
        for i in range(3):
            wid = f"{article[:4]}-{i}"
            text = f"The {article} began on {DATES[article]}. It was part {i} of the war."
            windows.append(
                {"id": wid, "article": article, "section": "", "start": i, "text": text, "sentences": [text]}
            )
            messages = [{"role": "user", "content": f"When did the {article} begin (part {i})?"},
                        {"role": "assistant", "content": f"The {article} began on {DATES[article]}."}]  # fmt: skip
            records.append({"id": f"r-{wid}", "kind": "qa", "type": "when", "window": wid, "article": article,
                            "messages": messages, "meta": {}})  # fmt: skip
    (tmp_path / "tokens").mkdir()
    write_jsonl(tmp_path / "tokens/recall.records.jsonl", [{"id": r["id"]} for r in records])
    return {"root": tmp_path, "windows": windows, "records": records,
            "windows_path": write_jsonl(tmp_path / "windows.jsonl", windows),
            "records_path": write_jsonl(tmp_path / "records.jsonl", records)}  # fmt: skip


def probe_args(pipeline, *extra: str) -> list[str]:
    root = pipeline["root"]
    return ["--params", str(ROOT / "params.yaml"), "--tokens", str(root / "tokens"),
            "--records", str(pipeline["records_path"]), "--windows", str(pipeline["windows_path"]),
            "--out", str(root / "weak_spots.json"), "--priorities", str(root / "priorities.json"), *extra]  # fmt: skip


def test_a_student_failing_one_article_puts_its_windows_first(pipeline):
    root = pipeline["root"]
    with OpenAIServer() as student:  # right about Leningrad, wrong about Midway
        for record in pipeline["records"]:
            right = record["article"] == "Siege of Leningrad"
            student.script(ok(record["messages"][1]["content"] if right else "It began in 1939 in Poland."))
        assert probe.main(probe_args(pipeline, "--server", student.base_url, "--server-model", "loopback-model")) == 0
        asked = [r.body["seed"] for r in student.chat_requests]
    assert asked == [1945 + i for i in range(6)]  # seeded as evaluate seeds its student
    report = json.loads((root / "weak_spots.json").read_text())
    assert [(r["name"], r["fail_rate"]) for r in report["by_article"]] == [("Battle of Midway", 1.0),
                                                                           ("Siege of Leningrad", 0.0)]  # fmt: skip
    assert {e["article"] for e in report["worst_examples"]} == {"Battle of Midway"}
    weights = json.loads((root / "priorities.json").read_text())["windows"]
    assert {w for w, v in weights.items() if v > 1} == {"Batt-0", "Batt-1", "Batt-2"}

    # generate with generate.priorities pointing at the file: Midway's windows come first (without
    # it, this seed's plan starts with two Leningrad windows)
    params = write_params(root, {"generate.priorities": str(root / "priorities.json"), "generate.types": ["when"],
                                 "generate.samples_per_type": 1})  # fmt: skip
    argv = ["--params", str(params), "--windows", str(pipeline["windows_path"]), "--types",
            str(ROOT / "data/prompt_types.yaml"), "--store", str(root / "store"), "--out", str(root / "gen.jsonl"),
            "--metrics", str(root / "gen.json"), "--limit", "2"]  # fmt: skip
    assert generate_stage.main(argv) == 0
    store = WorkStore(str(root / "store"))
    ran = sorted(store.get(DONE, key)["window"] for key in store.keys(DONE))  # done or skipped by the rules
    assert len(ran) == 2 and all(w.startswith("Batt") for w in ran)  # the budget of 2 went to Midway


def test_probe_bad_inputs_are_clear_errors(pipeline, caplog):
    assert probe.main(probe_args(pipeline, "--split", "val")) == 2
    assert "val.records.jsonl: not found" in caplog.text
    assert probe.main(probe_args(pipeline, "--model", str(pipeline["root"] / "none.pt"))) == 2
    assert "model not found" in caplog.text and not (pipeline["root"] / "weak_spots.json").exists()
