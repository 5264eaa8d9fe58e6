"""Our sharded shuffle against GNU `shuf` on the same ~500 MB JSONL: wall time and peak RSS.

`shuf` reads the whole input into RAM, so its peak RSS grows with the input; ours is bounded
by the pass-1 buffer (`shuffle.buffer_mb`) or one shard. The requirement checked here: our
peak RSS stays under 150 MB on the 500 MB input (PASS/FAIL, exit 1 on FAIL).

Method: both run as child processes under GNU time, whose `%M` is the child's peak RSS
(ru_maxrss); without GNU time the child's VmHWM is polled. The input is realistic chat records
(qa, contrastive and qpt kinds, grouped by article as the pipeline writes them), generated
from a fixed seed into a temp folder that is deleted afterwards.

Example:
  python -m bench.shuffle --mb 500
Output:
  ours: seconds=… peak_rss_mb=…
  shuf: seconds=… peak_rss_mb=…
  time_ratio(ours/shuf)=… rss_ratio(ours/shuf)=…
  PASS peak_rss_mb=… < 150
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench._timing import load_report, verdict

ROOT = Path(__file__).resolve().parent.parent
GOAL_TIME_RATIO = 2.0  # issue 16: at most 2x GNU shuf's time
RSS_LIMIT_MB = 150
GNU_TIME = "/usr/bin/time"
_WORD_TEXT = """
army division corps front offensive siege landing convoy bomber fighter tank infantry artillery general admiral
marshal battle campaign invasion retreat encirclement supply winter summer river bridge city coast island fleet
carrier submarine radar codebreaking resistance partisans occupation armistice surrender treaty conference
alliance Soviet German British American Japanese Italian Polish
"""
WORDS = tuple(_WORD_TEXT.split())
KINDS = (("qa", "who", 12, 30), ("contrastive", "contrast_person", 10, 20), ("qpt", "qpt_casual", 10, 200))


def make_record(rng: random.Random, article: str, window: int, number: int) -> dict:
    kind, rtype, q_words, a_words = rng.choice(KINDS)
    question = " ".join(rng.choices(WORDS, k=rng.randint(q_words // 2, q_words))).capitalize() + "?"
    answer = " ".join(rng.choices(WORDS, k=rng.randint(a_words // 2, a_words))).capitalize() + "."
    return {
        "id": f"{number:016x}",
        "kind": kind,
        "type": rtype,
        "window": f"{article[:8]}-{window}",
        "article": article,
        "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
        "meta": {"generator": "rules"},
    }


def write_input(path: Path, megabytes: int, seed: int = 1939) -> int:
    """Records grouped by article (as generate/qpt_wrap emit them) until `megabytes`; the count."""
    rng = random.Random(seed)
    target = megabytes << 20
    written = number = 0
    with open(path, "w", encoding="utf-8") as handle:
        while written < target:
            article = f"Battle of {rng.choice(WORDS).capitalize()} {number}"
            for window in range(rng.randint(5, 40)):
                for _ in range(rng.randint(3, 12)):
                    line = json.dumps(make_record(rng, article, window, number), separators=(",", ":")) + "\n"
                    handle.write(line)
                    written += len(line)
                    number += 1
    return number


def run_measured(cmd: list[str], work: Path, **kwargs) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one child process.

    Through GNU time (`%M`: the child's ru_maxrss) when it is installed, else by polling the
    child's VmHWM (its own peak-RSS high-water mark) every 10 ms. Not os.wait4 on a direct
    child: after fork+exec a child's ru_maxrss starts at its parent's peak.
    """
    start = time.perf_counter()
    if Path(GNU_TIME).exists():
        report = work / "time.txt"
        subprocess.run([GNU_TIME, "-f", "%M", "-o", str(report), *cmd], check=True, **kwargs)
        return time.perf_counter() - start, int(report.read_text().split()[-1]) / 1024
    process = subprocess.Popen(cmd, **kwargs)
    peak_kb = 0
    while process.poll() is None:
        with contextlib.suppress(OSError, AttributeError):  # the child may exit mid-read
            status = Path(f"/proc/{process.pid}/status").read_text()
            peak_kb = max(peak_kb, int(re.search(r"VmHWM:\s+(\d+)", status).group(1)))
        time.sleep(0.01)
    if process.returncode != 0:
        raise subprocess.CalledProcessError(process.returncode, cmd)
    return time.perf_counter() - start, peak_kb / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=500, help="input size in MB (default 500)")
    args = parser.parse_args(argv)
    if shutil.which("shuf") is None:
        print("GNU shuf not found; cannot compare", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="bench-shuffle-"))
    try:
        source = work / "input.jsonl"
        t0 = time.perf_counter()
        records = write_input(source, args.mb)
        size_mb = source.stat().st_size / 2**20
        print(
            f"input: records={records} mb={size_mb:.0f} generated_in_s={time.perf_counter() - t0:.1f} {load_report()}"
        )

        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        (work / "params.yaml").write_text(yaml.safe_dump({"shuffle": params["shuffle"]}))
        ours_cmd = [sys.executable, "-m", "stages.shuffle", "--params", str(work / "params.yaml"), "--in", str(source),
                    "--out", str(work / "ours.jsonl"), "--metrics", str(work / "m.json")]  # fmt: skip
        quiet = {"cwd": ROOT, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        ours_s, ours_mb = run_measured(ours_cmd, work, **quiet)
        (work / "ours.jsonl").unlink()
        shuf_cmd = ["shuf", "--random-source", str(source), "-o", str(work / "shuf.jsonl"), str(source)]
        shuf_s, shuf_mb = run_measured(shuf_cmd, work, **quiet)
        metrics = json.loads((work / "m.json").read_text())
        print(
            f"ours: seconds={ours_s:.1f} peak_rss_mb={ours_mb:.0f} shards={metrics['shards']} "
            f"largest_shard_mb={metrics['largest_shard_bytes'] / 2**20:.2f} "
            f"adjacent_same_article_ratio={metrics['adjacent_same_article_ratio']}"
        )
        print(f"shuf: seconds={shuf_s:.1f} peak_rss_mb={shuf_mb:.0f}")
        print(f"time_ratio(ours/shuf)={ours_s / shuf_s:.2f} rss_ratio(ours/shuf)={ours_mb / shuf_mb:.2f}")
        ok = ours_mb < RSS_LIMIT_MB
        print(f"{'PASS' if ok else 'FAIL'} peak_rss_mb={ours_mb:.0f} {'<' if ok else '>='} {RSS_LIMIT_MB}")
        fast = ours_s / shuf_s <= GOAL_TIME_RATIO
        print(f"goal: time_ratio(ours/shuf) <= {GOAL_TIME_RATIO:g} {verdict(fast)}")
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
