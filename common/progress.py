"""Progress bars that suit both a terminal and a log file.

On a terminal, `progress(...)` is a plain tqdm bar redrawn in place. When stderr is not a
terminal (`make repro > log`, CI, a DVC queue worker) a redrawn bar becomes thousands of
carriage returns in the file, so instead the bar logs one plain line every `interval`
seconds (and a last one when it closes) through `logging`, with the logger's timestamp:

    2026-12-02 01:20:03 progress INFO train:  45% 316/703 [01:02<01:15,  5.10step/s, loss=3.2]

Every progress bar of the project comes from here, so the choice is made in one place.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable

from tqdm import tqdm

# seconds between two lines in a log file: a 10-minute stage writes ~20 lines per bar
LOG_INTERVAL = 30.0

log = logging.getLogger("progress")

# what progress() returns, for annotations
ProgressBar = tqdm


class LoggedProgress(tqdm):
    """A tqdm bar that logs a line per interval instead of drawing: tqdm keeps counting,
    timing and formatting (rate, ETA, postfix); only `display` is replaced."""

    def __init__(self, *args, interval: float = LOG_INTERVAL, **kwargs) -> None:
        self.log_interval = interval
        self.last_logged: float | None = None
        self.last_logged_n: float | None = None
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        # tqdm sets disable before its final display in close(): that line is always logged
        closing = self.disable
        now = time.monotonic()
        if self.last_logged is None:
            # the first call comes from tqdm's constructor at n=0: start the clock, log nothing
            self.last_logged, self.last_logged_n = now, self.n
            if not closing:
                return True
        due = now - self.last_logged >= self.log_interval and self.n != self.last_logged_n
        if closing or due:
            log.info("%s", self.format_meter(**{**self.format_dict, "ncols": 0}))
            self.last_logged, self.last_logged_n = now, self.n
        return True


def progress(iterable: Iterable | None = None, *, interval: float = LOG_INTERVAL, **kwargs) -> tqdm:
    """A progress bar over `iterable` (or a manual one, with `total=`), taking tqdm's keyword
    arguments: drawn on a terminal, logged every `interval` seconds otherwise."""
    if sys.stderr.isatty():
        return tqdm(iterable, **kwargs)
    # tqdm still needs a stream for the clearing it does on close; the lines go to the log
    return LoggedProgress(iterable, interval=interval, file=_Discard(), **kwargs)


class _Discard:
    """A stream that swallows tqdm's own writes (the redraws we replace with log lines)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass
