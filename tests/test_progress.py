"""Progress bars: drawn on a terminal, one plain log line per interval in a file."""

import io
import json
import logging
import re

import pytest
from tqdm import tqdm

from common import progress as progress_module
from common.progress import LoggedProgress, progress
from stages import window
from tests.conftest import PACKAGES, ROOT


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(progress_module.time, "monotonic", fake)
    return fake


@pytest.fixture
def log_file_stderr(monkeypatch):
    stream = io.StringIO()  # not a terminal, like `make repro > log 2>&1`
    monkeypatch.setattr("sys.stderr", stream)
    return stream


def progress_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "progress"]


def test_in_a_log_file_a_bar_logs_one_line_per_interval_and_a_last_one(clock, log_file_stderr, caplog):
    caplog.set_level(logging.INFO)
    bar = progress(total=10, desc="train", unit="step", interval=30, mininterval=0, miniters=1)
    assert isinstance(bar, LoggedProgress)
    for step in range(10):
        clock.now += 10  # a step every 10 s: a line every third step
        bar.update(1)
        bar.set_postfix(loss=f"{9 - step:.1f}")
    bar.close()
    lines = progress_lines(caplog)
    assert [re.search(r"(\d+)/10", line).group(1) for line in lines] == ["3", "6", "9", "10"]
    assert lines[-1].startswith("train: 100% 10/10 [")
    assert lines[-1].endswith("step/s, loss=0.0]")
    assert "\r" not in log_file_stderr.getvalue()  # tqdm's own redraws are gone
    assert all("|" not in line and "█" not in line for line in lines)


def test_a_quick_loop_logs_only_its_final_line(clock, log_file_stderr, caplog):
    caplog.set_level(logging.INFO)
    assert sum(progress(range(1000), desc="window", unit="article")) == sum(range(1000))
    assert progress_lines(caplog) == [progress_lines(caplog)[0]]
    assert progress_lines(caplog)[0].startswith("window: 100% 1000/1000 [")


def test_a_bar_without_total_or_kept_logs_its_count(clock, log_file_stderr, caplog):
    caplog.set_level(logging.INFO)
    list(progress(iter(range(7)), desc="dump", unit="page", leave=False))
    (line,) = progress_lines(caplog)
    assert line.startswith("dump: 7page [")


def test_a_disabled_bar_logs_nothing(clock, log_file_stderr, caplog):
    caplog.set_level(logging.INFO)
    with progress(total=3, desc="train", disable=True) as bar:
        bar.update(3)
    assert progress_lines(caplog) == []


def test_on_a_terminal_the_bar_is_drawn_in_place(monkeypatch, caplog):
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    caplog.set_level(logging.INFO)
    bar = progress(total=2, desc="train", file=terminal)
    assert type(bar) is tqdm
    bar.update(2)
    bar.close()
    assert "\r" in terminal.getvalue() and progress_lines(caplog) == []


def test_a_stage_run_into_a_file_writes_no_carriage_return(tmp_path, params_file, capfd, caplog):
    caplog.set_level(logging.INFO)
    inp = tmp_path / "clean.jsonl"
    inp.write_text(
        json.dumps({"title": "A", "sections": [{"heading": "Lead", "text": "One. Two. Three. Four."}]}) + "\n"
    )
    args = ["--params", str(params_file()), "--in", str(inp), "--out", str(tmp_path / "w.jsonl")]
    assert window.main([*args, "--metrics", str(tmp_path / "m.json")]) == 0
    assert "\r" not in capfd.readouterr().err
    assert [line.split(" [")[0] for line in progress_lines(caplog)] == ["window: 100% 1/1"]


def test_every_progress_bar_of_the_project_comes_from_common_progress():
    direct = [
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES + ("bench",)
        for path in sorted((ROOT / package).rglob("*.py"))
        if "tqdm" in path.read_text() and path != ROOT / "common/progress.py"
    ]
    assert direct == []
