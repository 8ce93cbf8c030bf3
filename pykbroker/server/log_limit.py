"""Rate-limited logging: a scan or a broken client must not flood the broker's log.

At most `burst` lines per `interval_s`; the rest are counted and reported in one line when the
next interval's first line is written ("... and N more malformed connections in the last 10 s").
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, level: int, what: str, *, burst: int = 5,
                 interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.level = level
        self.what = what  # plural noun for the summary line, e.g. "malformed connections"
        self.burst = burst
        self.interval_s = interval_s
        self._clock = clock
        self._window_start = -float("inf")
        self._written = 0
        self.suppressed = 0

    def log(self, msg: str, *args: Any) -> None:
        if not self.logger.isEnabledFor(self.level):
            return
        now = self._clock()
        if now - self._window_start >= self.interval_s:
            self._flush(now)
        if self._written < self.burst:
            self._written += 1
            self.logger.log(self.level, msg, *args)
        else:
            self.suppressed += 1

    def flush_due(self) -> None:
        """Write the pending summary once its interval is over (called periodically, so a flood
        that stops is still reported)."""
        now = self._clock()
        if self.suppressed and now - self._window_start >= self.interval_s:
            self._flush(now)

    def _flush(self, now: float) -> None:
        if self.suppressed:
            self.logger.log(self.level, "... and %d more %s in the last %.0f s", self.suppressed, self.what,
                            now - self._window_start)
        self._window_start = now
        self._written = 0
        self.suppressed = 0
