"""Swapping cleaned segments in for the ones they replace, crash-safely (Kafka's replaceSegments).

The cleaner writes a group's replacement as ``<base>.log.cleaned`` (+ its indexes), fsyncs it,
then renames it ``.swap``: that rename of the ``.log`` file (the last of its four) is the commit
point. After it, the in-memory segment list is switched on the event loop, the replaced segments'
files are renamed ``.deleted`` (their open descriptors keep serving readers until they are closed,
``file.delete.delay.ms`` later), and the ``.swap`` files lose their suffix.

A crash leaves one of: ``.cleaned`` files (the cleaning is rolled back: they are removed), or a
``.log.swap`` (the swap is completed at start-up: live segments whose base offset lies in the
swap segment's offset range are removed, then the suffix goes), plus ``.deleted`` leftovers. So a
group of segments is either wholly old or wholly cleaned, never a mix.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final

from pykbroker.log.checkpoint import fsync_dir
from pykbroker.log.config import LogConfig
from pykbroker.log.segment import LOG_SUFFIX, SEGMENT_FILE_SUFFIXES, LogSegment, segment_file

log = logging.getLogger(__name__)

CLEANED_SUFFIX: Final = ".cleaned"
SWAP_SUFFIX: Final = ".swap"
DELETED_SUFFIX: Final = ".deleted"


def commit_cleaned(segment: LogSegment, *, fsync: bool) -> None:
    """``.cleaned`` -> ``.swap``: from here a crash completes the swap instead of undoing it."""
    segment.rename_suffix(SWAP_SUFFIX)
    if fsync:
        fsync_dir(segment.directory)


def finish_swap(old: list[LogSegment], new: LogSegment, *, fsync: bool) -> None:
    """After the in-memory switch: old files become ``.deleted``, the new ones lose ``.swap``."""
    for seg in old:
        seg.rename_suffix(DELETED_SUFFIX)
    if fsync:
        fsync_dir(new.directory)
    new.rename_suffix("")
    if fsync:
        fsync_dir(new.directory)


def _base_of(name: str) -> int | None:
    stem = name[:20]
    return int(stem) if len(stem) == 20 and stem.isdigit() else None


def complete_interrupted_swaps(directory: Path, config: LogConfig | None = None) -> list[int]:
    """Start-up: drop ``.cleaned`` files, complete every ``.log.swap``; returns the swapped bases."""
    config = config or LogConfig()
    names = sorted(p.name for p in directory.iterdir())
    for name in names:
        if name.endswith(CLEANED_SUFFIX):
            (directory / name).unlink(missing_ok=True)
    swaps = [b for n in names if n.endswith(LOG_SUFFIX + SWAP_SUFFIX) and (b := _base_of(n)) is not None]
    for base in swaps:
        seg = LogSegment(directory, base, config, suffix=SWAP_SUFFIX)
        try:
            seg.recover()  # fsynced before the commit; this also gives its offset range and fresh indexes
            end = seg.read_next_offset()
        finally:
            seg.close_handles()
        live = [b for n in names if n.endswith(LOG_SUFFIX) and (b := _base_of(n)) is not None]
        for old in live:
            if base <= old < max(end, base + 1):
                for kind in SEGMENT_FILE_SUFFIXES:
                    segment_file(directory, old, kind).unlink(missing_ok=True)
        for kind in SEGMENT_FILE_SUFFIXES:
            path = segment_file(directory, base, kind + SWAP_SUFFIX)
            if path.exists():
                path.replace(segment_file(directory, base, kind))
        log.warning("%s: completed the interrupted swap of cleaned segment %d (offsets %d..%d)",
                    directory.name, base, base, end - 1)
    if swaps:
        fsync_dir(directory)
    return swaps
