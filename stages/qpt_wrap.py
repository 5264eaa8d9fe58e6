"""qpt_wrap: Question Pre-Training, each raw window as the answer to several user phrasings.

Every window becomes `qpt.phrasings_per_window` chat records whose assistant turn is the
window text and whose user turns come from as many different styles of data/qpt_templates.yaml
(formal, casual, typo'd, imperative, a bare topic, ...), filled with the window's article,
section, years and entities (synth/qpt_fields.py). The model sees the same facts asked for in
many ways, so it learns to answer a question however it is put.

Reproducible: each window draws from its own random.Random seeded with `qpt.seed` and the
window id, so the styles and templates a window draws do not change when other windows are
added or removed (only a heading's capitalisation reads the whole corpus), and the same
inputs and params give the same bytes. Record ids hash window id, style and
template. A style is only drawn for a window when one of its templates has every field it
needs (no "what happened at" without a place, no year template without a year). The logic
is synth/qpt.py.

Input:  data/windows.jsonl, data/qpt_templates.yaml
Output: data/qpt.jsonl, metrics/qpt.json (windows, records, records per style, shortfalls)

Example:
  python -m stages.qpt_wrap --params params.yaml --windows data/windows.jsonl \
      --templates data/qpt_templates.yaml --out data/qpt.jsonl --metrics metrics/qpt.json
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

from common.cli import setup_logging
from common.files import JsonlError, read_jsonl, write_json, write_jsonl
from common.params import ParamsError, load_section
from corpus.windows import QPT_WINDOW_FIELDS, check_windows
from synth.qpt import QptParams, TemplateError, load_styles, wrap_windows

log = logging.getLogger("qpt_wrap")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--windows", type=Path, required=True)
    parser.add_argument("--templates", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params = load_section(args.params, "qpt", QptParams)
        if params.phrasings_per_window < 1:
            raise ParamsError(f"{args.params}:qpt.phrasings_per_window: must be >= 1")
        styles = load_styles(args.templates)
        windows = list(read_jsonl(args.windows))
        check_windows(windows, args.windows, QPT_WINDOW_FIELDS)
    except (ParamsError, TemplateError, JsonlError, ValueError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    if params.phrasings_per_window > len(styles):
        log.warning("phrasings_per_window=%d > styles=%d: capped", params.phrasings_per_window, len(styles))
    stats: Counter = Counter()
    records = list(wrap_windows(windows, styles, params, stats))
    write_jsonl(args.out, records)
    per_style = Counter(r["meta"]["style"] for r in records)
    write_json(
        args.metrics,
        {
            "windows": stats["windows"],
            "records": len(records),
            "styles": len(styles),
            "styles_used": len(per_style),
            "windows_short_of_styles": stats["windows_short_of_styles"],
            "windows_mid_story": stats["windows_mid_story"],
            "records_per_style": {s.name: per_style[s.name] for s in styles},
        },
    )
    log.info("windows=%d records=%d styles_used=%d/%d", stats["windows"], len(records), len(per_style), len(styles))
    return 0


if __name__ == "__main__":
    sys.exit(main())
