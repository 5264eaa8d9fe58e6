"""lm-evaluation-harness with the ww2lm model adapter registered and the project's tasks included.

lm-eval finds models only in its own registry, so this imports evaluation/harness.py (which
registers `ww2lm`), adds `--include_path evaluation/lm_eval_tasks` (the `ww2lm_exam` task) and
hands every argument to lm-eval's own command line. Offline: the task reads a local JSONL.

Examples:
  python -m tools.harness --model ww2lm --model_args model=data/model/model.pt,tokenizer=data/tokenizer \
      --tasks ww2lm_exam
  python -m tools.harness ls tasks --include_path evaluation/lm_eval_tasks
"""

from __future__ import annotations

import os
import sys

from lm_eval.__main__ import cli_evaluate

from evaluation.harness import TASKS_DIR, Ww2lmLM  # noqa: F401  (registers the `ww2lm` model)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in ([], ["-h"], ["--help"]):
        print(__doc__)
        print("lm-eval's own options: python -m tools.harness run --help")
        return 0
    if "--include_path" not in argv and (not argv or argv[0] not in ("ls", "validate")):
        argv += ["--include_path", str(TASKS_DIR)]
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    sys.argv = ["lm-eval", *argv]
    cli_evaluate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
