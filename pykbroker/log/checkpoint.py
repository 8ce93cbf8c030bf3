"""Tiny durable state files kept in a partition directory.

Each file holds one integer. Writes go to a temporary file which is
renamed over the old one, so a crash leaves either the old or the new value,
never a torn one. A missing or unreadable file reads as ``None`` (the caller
falls back to what the segments say).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

LOG_START_OFFSET_FILE: Final = "log-start-offset"
RECOVERY_POINT_FILE: Final = "recovery-point"
CLEAN_SHUTDOWN_FILE: Final = ".clean-shutdown"


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, fsync: bool = True) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if fsync:
        fsync_dir(path.parent)


def write_int(path: Path, value: int, *, fsync: bool = True) -> None:
    write_atomic(path, f"{value}\n".encode(), fsync=fsync)


def read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
