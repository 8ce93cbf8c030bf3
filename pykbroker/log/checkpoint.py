"""Tiny durable state files: partition checkpoints and broker/topic metadata.

Writes go to ``<name>.tmp`` which is renamed over the old file, so a crash leaves either the
old or the new content, never a torn one; a failed write removes its temporary file (a full
disk must not also fill up with ``*.tmp`` leftovers). A missing or unreadable integer file
reads as ``None`` (the caller falls back to what the segments say).

Plain blocking functions with no event-loop state: the broker calls the fsyncing ones from a
worker thread (``trio.to_thread.run_sync``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

LOG_START_OFFSET_FILE: Final = "log-start-offset"
RECOVERY_POINT_FILE: Final = "recovery-point"
CLEAN_SHUTDOWN_FILE: Final = ".clean-shutdown"
CLEANER_CHECKPOINT_FILE: Final = "cleaner-offset-checkpoint"
TMP_SUFFIX: Final = ".tmp"


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically; on any failure no temporary file is left."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError as exc:
            log.error("could not remove temporary file %s after a failed write: %s", tmp, exc)
        raise
    if fsync:
        fsync_dir(path.parent)


def remove_stray_tmp_files(directory: Path) -> list[Path]:
    """Remove ``*.tmp`` files of interrupted atomic writes (never the files they would replace)."""
    removed = []
    for tmp in directory.glob("*" + TMP_SUFFIX):
        if tmp.is_file():
            tmp.unlink()
            removed.append(tmp)
    return removed


def write_int(path: Path, value: int, *, fsync: bool = True) -> None:
    write_atomic(path, f"{value}\n".encode(), fsync=fsync)


def read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
