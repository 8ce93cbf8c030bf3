"""Waiting for a child process's output line without ``select.select``, which refuses descriptors
numbered 1024 and above (a test process with many files open, a busy development shell)."""

from __future__ import annotations

import select
from typing import IO


def readable_within(stream: IO[bytes], timeout_s: float) -> bool:
    """True once ``stream`` has something to read (or is at its end) within ``timeout_s``."""
    poller = select.poll()
    poller.register(stream, select.POLLIN | select.POLLHUP)
    return bool(poller.poll(max(timeout_s, 0) * 1000))
