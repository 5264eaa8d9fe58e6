import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest

from dataset.shuffle import Spill, line_spans, newline_spans, read_chunks
from dataset.spread import ARTICLE, Spread
from stages import shuffle
from tests.conftest import ROOT


def record_line(article: str, number: int, pad: int = 0) -> bytes:
    record = {
        "id": f"{number:08x}",
        "kind": "qa",
        "article": article,
        "messages": [{"role": "user", "content": f"Q{number}?"}, {"role": "assistant", "content": "A" * pad}],
    }
    return (json.dumps(record) + "\n").encode()


def grouped_input(n_articles: int, per_article: int, pad: int = 0) -> bytes:
    """Records grouped by article, as generate and qpt_wrap write them."""
    return b"".join(
        record_line(f"Battle {a}", a * per_article + i, pad) for a in range(n_articles) for i in range(per_article)
    )


def run(tmp_path, params_file, inputs: list[bytes], out_name="shuffled.jsonl", **overrides):
    paths = []
    for number, data in enumerate(inputs):
        paths += ["--in", str(tmp_path / f"in{number}.jsonl")]
        (tmp_path / f"in{number}.jsonl").write_bytes(data)
    out = tmp_path / out_name
    code = shuffle.main(
        [
            "--params",
            str(params_file(**overrides)),
            *paths,
            "--out",
            str(out),
            "--metrics",
            str(tmp_path / "shuffle.json"),
        ]
    )
    return code, out


def articles_in(data: bytes) -> list[str]:
    return [json.loads(line)["article"] for line in data.splitlines()]


def test_output_is_a_permutation_of_all_inputs(tmp_path, params_file):
    first = grouped_input(10, 30)
    second = grouped_input(5, 20).replace(b"Battle", b"Siege")
    third = record_line("Midway", 9)[:-1]  # no newline at end of file
    code, out = run(tmp_path, params_file, [first, b"\n" + second + b"  \n", third], shuffle__shards=7)
    assert code == 0
    expected = (first + second + third + b"\n").splitlines(keepends=True)
    lines = out.read_bytes().splitlines(keepends=True)
    assert Counter(lines) == Counter(expected) and lines != expected
    metrics = json.loads((tmp_path / "shuffle.json").read_text())
    assert metrics["records"] == 401 and metrics["blank_lines_skipped"] == 2
    assert metrics["shards_used"] == 7 and metrics["articles"] == 16
    assert not (tmp_path / "shuffled.jsonl.tmp").exists()


def test_rerun_is_byte_identical_and_the_seed_changes_the_order(tmp_path, params_file):
    data = grouped_input(20, 25)
    _, out = run(tmp_path, params_file, [data], shuffle__shards=10)
    first = out.read_bytes()
    _, out = run(tmp_path, params_file, [data], shuffle__shards=10, shuffle__buffer_mb=1)
    assert out.read_bytes() == first  # the buffer size only changes when shards are written
    _, out = run(tmp_path, params_file, [data], shuffle__shards=10, shuffle__seed=7)
    assert out.read_bytes() != first and sorted(out.read_bytes().splitlines()) == sorted(first.splitlines())


def test_records_of_one_article_are_spread_over_the_output(tmp_path, params_file):
    # 40 articles x 50 records, 20 shards: the input is one run per article. A uniform
    # shuffle leaves sum n_a (n_a - 1) / n = 49 same-article neighbours (sd ~7).
    _, out = run(tmp_path, params_file, [grouped_input(40, 50)], shuffle__shards=20)
    articles = articles_in(out.read_bytes())
    adjacent = sum(a == b for a, b in zip(articles, articles[1:], strict=False))
    assert 49 - 4 * 7 < adjacent < 49 + 4 * 7  # the input has 40 * 49 = 1960
    positions = {}
    for index, article in enumerate(articles):
        positions.setdefault(article, []).append(index)
    for spots in positions.values():  # every article reaches both ends of the output ...
        assert spots[0] < 0.1 * len(articles) and spots[-1] > 0.9 * len(articles)
        assert max(np.diff(spots)) < 0.25 * len(articles)  # ... with no big hole in between
    metrics = json.loads((tmp_path / "shuffle.json").read_text())
    assert metrics["adjacent_same_article"] == adjacent and metrics["adjacent_same_article_expected"] == 49.0
    assert 0.5 < metrics["adjacent_same_article_ratio"] < 1.5 and metrics["max_same_article_run"] <= 4


def test_spread_counts_runs_across_batches():
    lines = [b'{"article":"%s"}' % a.encode() for a in "AABBBAACCCCD"] + [b'{"x":1}', b'{"article":"D"}']
    spread = Spread()
    for batch in (lines[:4], lines[4:5], lines[5:9], lines[9:]):
        spread.add(batch)
    assert spread.adjacent == 1 + 2 + 1 + 3  # AA, BBB, AA, CCCC; D, no-article, D never pair
    assert spread.max_run == 4 and dict(zip(spread.ids, spread.counts.tolist(), strict=True)) == {
        b"A": 4,
        b"B": 3,
        b"C": 4,
        b"D": 2,
    }


def test_chunks_are_the_batches_readlines_gave(tmp_path):
    # The shard draws are made per chunk, so chunks must stay what readlines(hint) returned
    # (lines until their total passes the hint) for the output to stay the same bytes.
    first = b"".join(b"%d" % i * (i % 7) + b"\n" for i in range(200)) + b"  \n\n\t\r\n  x\n"
    paths = [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    for path, data in zip(paths, [first, b"\n" * 30 + b"last", b"one\n"], strict=True):
        path.write_bytes(data)
    for hint in (1, 16, 64, 1000):
        reference, blank = [], 0
        for path in paths:
            with open(path, "rb") as handle:
                while lines := handle.readlines(hint):
                    lines[-1] += b"" if lines[-1].endswith(b"\n") else b"\n"
                    reference.append([line for line in lines if line.strip()])
                    blank += len(lines) - len(reference[-1])
        chunks = list(read_chunks(paths, hint))
        assert [[c[s:e] for s, e in zip(*line_spans(c)[:2], strict=True)] for c in chunks] == reference
        assert sum(line_spans(c)[2] for c in chunks) == blank == 29 + 3 + 30


@pytest.mark.parametrize(
    "line",
    [
        b'{"article":"Midway"}',
        b'{"article" :  "Battle of \\"Kursk\\""}',
        b'{"article":"C:\\\\"}',
        b'{"article":""}',
        b'{"kind":"article","article":"Dunkirk"}',
        b'{"article":"unterminated}',
        b'{"article":"escape at the end\\',
        b'{"x":1}',
    ],
)
def test_article_regex_matches_the_per_character_form(line):
    old = re.compile(rb'"article"\s*:\s*"((?:[^"\\]|\\.)*)"')  # the form it replaced
    found, expected = ARTICLE.search(line), old.search(line)
    assert (found and found[1]) == (expected and expected[1])


def test_spill_gives_back_each_shard_in_input_order_and_deletes_files_as_it_goes(tmp_path):
    spill = Spill(tmp_path / "shards", shards=70)  # 32 files of 2 or 3 shards
    rng = np.random.default_rng(0)
    sent: dict[int, list[bytes]] = {}
    for run in range(3):
        lines = [b"run %d line %d\n" % (run, i) for i in range(100)]
        chunks = [b"".join(lines[:60]), b"".join(lines[60:])]
        shard_of = rng.integers(70, size=100)
        spans = [newline_spans(chunk) for chunk in chunks]
        spill.write_run(chunks, [s for s, _ in spans], [e for _, e in spans], [shard_of[:60], shard_of[60:]])
        for line, shard in zip(lines, shard_of.tolist(), strict=True):
            sent.setdefault(shard, []).append(line)
    spill.close()
    got = {}
    for shard, data in spill.read_shards():
        got[shard] = data
        assert spill.path(0).exists() == (shard < 2)  # file 0 holds shards 0 and 1: gone once read
    assert got == {shard: b"".join(lines) for shard, lines in sent.items()}
    assert not any(spill.folder.iterdir())


@pytest.fixture(scope="module")
def big_input(tmp_path_factory):
    """~40 MB of ~850-byte records, 300 per article; with 1000 shards one shard is ~40 KB."""
    path = tmp_path_factory.mktemp("big") / "big.jsonl"
    with open(path, "wb") as handle:
        for chunk in range(50):
            handle.write(
                b"".join(
                    record_line(f"Article {n // 300}", n, pad=700) for n in range(chunk * 1000, chunk * 1000 + 1000)
                )
            )
    return path


def child(script: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )


@pytest.mark.slow
def test_peak_memory_stays_bounded_on_an_input_much_larger_than_a_shard(tmp_path, params_file, big_input):
    # Method: the child reads its own VmHWM (the kernel's peak-RSS high-water mark of its
    # address space, /proc/self/status) after imports and again after main(); the difference
    # is how far the shuffle pushed the peak. Not ru_maxrss: after fork+exec it starts at the
    # parent's (pytest's) peak. Loading the input would cost its whole size (40 MB); the
    # shuffle should cost about buffer_mb (4 MB) of pass-1 buffers plus fixed overhead.
    params = params_file(shuffle__shards=1000, shuffle__buffer_mb=4)
    argv = ["--params", str(params), "--in", str(big_input), "--out", str(tmp_path / "o.jsonl"),
            "--metrics", str(tmp_path / "m.json")]  # fmt: skip
    process = child(
        "import re; from stages import shuffle\n"
        "def hwm(): return int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        f"before = hwm(); code = shuffle.main({argv!r}); print(code, before, hwm())"
    )
    code, before_kb, after_kb = map(int, process.communicate(timeout=120)[0].split())
    input_mb = big_input.stat().st_size / 2**20
    growth_mb = (after_kb - before_kb) / 1024
    assert code == 0 and input_mb > 38
    assert 0 < growth_mb < 0.25 * input_mb, f"peak RSS grew {growth_mb:.1f} MB on a {input_mb:.0f} MB input"
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["largest_shard_bytes"] < input_mb * 2**20 / 500


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["pass1", "pass2"])
def test_kill_9_mid_run_then_rerun_gives_the_same_bytes(tmp_path, params_file, big_input, phase):
    params = params_file(shuffle__shards=200, shuffle__buffer_mb=1)
    out = tmp_path / "shuffled.jsonl"
    work = tmp_path / "shuffled.jsonl.tmp"
    argv = ["--params", str(params), "--in", str(big_input), "--out", str(out), "--metrics", str(tmp_path / "m.json")]
    # pass 1 is running once shard files appear, pass 2 once the output part file exists
    reached = (lambda: any((work / "shards").glob("*"))) if phase == "pass1" else (work / "output.part").exists
    for _attempt in range(5):  # the run may finish between our last look and the kill; try again
        process = child(f"from stages import shuffle; shuffle.main({argv!r})")
        deadline = time.monotonic() + 60
        while process.poll() is None and not reached() and time.monotonic() < deadline:
            time.sleep(0.001)
        if process.poll() is None:  # still running (poll also reaps it if not, so no stray kill)
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            if not out.exists():
                break
        out.unlink(missing_ok=True)
    else:
        pytest.fail(f"could not kill the shuffle during {phase}")
    assert work.exists()  # the killed run's leftovers, which the rerun must clear
    assert shuffle.main(argv) == 0
    assert not work.exists()
    reference = tmp_path / "reference.jsonl"
    assert shuffle.main([*argv[:4], "--out", str(reference), "--metrics", str(tmp_path / "r.json")]) == 0
    assert out.read_bytes() == reference.read_bytes()


@pytest.mark.parametrize("content", [b"", b"\n \n\n"])
def test_empty_input_is_a_clear_error(tmp_path, params_file, caplog, content):
    code, out = run(tmp_path, params_file, [content, b""])
    assert code == 2 and "empty input" in caplog.text
    assert not out.exists() and not (tmp_path / "shuffled.jsonl.tmp").exists()


def test_missing_input_and_bad_params_are_clear_errors(tmp_path, params_file, caplog):
    code = shuffle.main(
        [
            "--params",
            str(params_file()),
            "--in",
            str(tmp_path / "nope.jsonl"),
            "--out",
            str(tmp_path / "o.jsonl"),
            "--metrics",
            str(tmp_path / "m.json"),
        ]
    )
    assert code == 2 and "input not found" in caplog.text and "nope.jsonl" in caplog.text
    code, out = run(tmp_path, params_file, [grouped_input(2, 2)], shuffle__shards=0)
    assert code == 2 and "shards and buffer_mb must be >= 1" in caplog.text and not out.exists()


def test_chunk_mode_shuffles_only_the_order_of_runs_of_consecutive_records(tmp_path, params_file):
    data = grouped_input(10, 30)  # 300 records, one run of 30 per article
    code, out = run(tmp_path, params_file, [data + b"\n"], shuffle__mode="chunks", shuffle__chunk_records=30)
    assert code == 0
    lines = out.read_bytes().splitlines(keepends=True)
    expected = data.splitlines(keepends=True)
    chunks = [expected[i : i + 30] for i in range(0, 300, 30)]
    got = [lines[i : i + 30] for i in range(0, 300, 30)]
    assert sorted(map(tuple, got)) == sorted(map(tuple, chunks)) and got != chunks  # whole chunks, new order
    metrics = json.loads((tmp_path / "shuffle.json").read_text())
    assert metrics["mode"] == "chunks" and metrics["chunks"] == 10 and metrics["blank_lines_skipped"] == 1
    assert metrics["adjacent_same_article"] == 10 * 29 and metrics["max_same_article_run"] == 30
    _, again = run(tmp_path, params_file, [data + b"\n"], shuffle__mode="chunks", shuffle__chunk_records=30)
    assert again.read_bytes() == b"".join(lines)  # seeded: a rerun gives the same bytes


def test_chunk_mode_keeps_a_short_last_chunk_and_chunks_span_input_files(tmp_path, params_file):
    first, second = grouped_input(3, 5), grouped_input(2, 4).replace(b"Battle", b"Siege")
    code, out = run(tmp_path, params_file, [first, second], shuffle__mode="chunks", shuffle__chunk_records=4)
    assert code == 0
    expected = (first + second).splitlines(keepends=True)  # 23 records: 5 chunks of 4 and one of 3
    lines = out.read_bytes().splitlines(keepends=True)
    assert Counter(lines) == Counter(expected)
    starts = {tuple(expected[i : i + 4]) for i in range(0, 23, 4)}
    position, found = 0, set()
    while position < len(lines):  # the output is the chunks back to back, each intact
        size = next(n for n in (4, 3) if tuple(lines[position : position + n]) in starts)
        found.add(tuple(lines[position : position + size]))
        position += size
    assert found == starts and json.loads((tmp_path / "shuffle.json").read_text())["chunks"] == 6


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"shuffle__mode": "articles"}, "shuffle.mode"),
        ({"shuffle__mode": "chunks", "shuffle__chunk_records": 0}, "shuffle.chunk_records: must be >= 1"),
    ],
)
def test_bad_chunk_params_name_the_key(tmp_path, params_file, caplog, overrides, message):
    code, out = run(tmp_path, params_file, [grouped_input(2, 2)], **overrides)
    assert code == 2 and message in caplog.text and not out.exists()
