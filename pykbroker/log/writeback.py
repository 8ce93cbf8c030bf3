"""Paced writeback: ask the kernel to start writing a segment's new bytes out as they arrive.

Without it the dirty pages of a whole segment (1 GiB by default) pile up and the fsync at its
roll writes them all at once, a burst of kernel work that competes with the event loop for the
CPU. Linux's ``sync_file_range(SYNC_FILE_RANGE_WRITE)`` starts writeback of a range without
waiting for it and without a journal commit, so the roll's fsync finds little left to do. It is
advice only: it changes no durability guarantee (the fsync still runs), and where the call does
not exist (not Linux, no glibc) nothing happens.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Callable

#: Start writeback each time this many bytes have been appended to a segment since the last start.
WRITEBACK_BYTES = 8 << 20

_SYNC_FILE_RANGE_WRITE = 2


def _load() -> Callable[[int, int, int], None] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    fn.restype = ctypes.c_int

    def start(fd: int, offset: int, nbytes: int) -> None:
        fn(fd, offset, nbytes, _SYNC_FILE_RANGE_WRITE)  # errors (EBADF after a close) are ignored: advice

    return start


_start = _load()
available = _start is not None


def start_writeback(fd: int, offset: int, nbytes: int) -> None:
    """Start writing ``nbytes`` at ``offset`` of ``fd`` to disk, without waiting (worker thread)."""
    if _start is not None and nbytes > 0:
        _start(fd, offset, nbytes)
