"""Loading a partition directory and recovering it after a crash (Kafka's ``LogLoader``).

What is trusted:

* segments wholly below the persisted *recovery point* (everything up to it
  was flushed, and their indexes finalised when they were rolled) are
  opened from their index files after a sanity check;
* everything else - always the active segment after an unclean shutdown -
  is scanned batch by batch (length, CRC-32C, offset order), its indexes
  rebuilt, and cut at the first invalid byte; segments after a corrupt one
  are deleted, since their offsets would follow a hole;
* after a clean shutdown (marker written by ``close``) only the active
  segment's tail after its last index entry is re-validated; any doubt falls
  back to the full scan.

A segment whose index files are missing or fail the sanity check is always
rebuilt by a full scan.

The cleaner's files come first (``swap.py``): ``.cleaned`` files are an unfinished cleaning and
go; a ``.log.swap`` is a finished one whose swap was interrupted: it replaces the segments whose
base offsets it covers, then loses its suffix; ``.deleted`` files were already swapped out.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from pykbroker.log.checkpoint import CLEAN_SHUTDOWN_FILE, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE, read_int
from pykbroker.log.config import LogConfig
from pykbroker.log.index import IndexCorruptError
from pykbroker.log.segment import INDEX_SUFFIX, TIME_INDEX_SUFFIX, LogSegment
from pykbroker.log.swap import complete_interrupted_swaps

log = logging.getLogger(__name__)

_SEGMENT_NAME = re.compile(r"^(\d{20})\.(log|index|timeindex|txnindex)$")
_STRAY_SUFFIXES = (".deleted", ".cleaned", ".swap", ".tmp")  # .swap: those left after completing swaps


@dataclass(slots=True)
class LoadedLog:
    segments: list[LogSegment]
    log_start_offset: int
    recovery_point: int
    clean_shutdown: bool
    truncated_bytes: int
    rebuilt_segments: list[int]
    checkpointed_log_start_offset: int | None = None


def _segment_bases(directory: Path, config: LogConfig) -> list[int]:
    """Base offsets of ``.log`` files; delete stray temp files and orphan indexes."""
    bases: set[int] = set()
    index_only: dict[int, list[Path]] = {}
    complete_interrupted_swaps(directory, config)
    for path in directory.iterdir():
        if path.name.endswith(_STRAY_SUFFIXES):
            path.unlink(missing_ok=True)
            continue
        m = _SEGMENT_NAME.match(path.name)
        if not m:
            continue
        base = int(m.group(1))
        if m.group(2) == "log":
            bases.add(base)
        else:
            index_only.setdefault(base, []).append(path)
    for base, paths in index_only.items():
        if base not in bases:
            for p in paths:
                p.unlink(missing_ok=True)
    return sorted(bases)


def _open_trusted(seg: LogSegment) -> bool:
    """Load a segment from its indexes; False if they must be rebuilt."""
    if not seg.index_files_exist():
        return False
    try:
        seg.load_indexes()
    except IndexCorruptError as exc:
        log.warning("%s: %s; rebuilding indexes", seg.directory.name, exc)
        return False
    return True


def load_log(directory: Path, config: LogConfig) -> LoadedLog:
    """Open all segments of a partition directory, recovering as needed."""
    directory.mkdir(parents=True, exist_ok=True)
    clean_marker = directory / CLEAN_SHUTDOWN_FILE
    clean = clean_marker.exists()
    # From here on, a crash must not look like a clean shutdown.
    clean_marker.unlink(missing_ok=True)
    recovery_point = read_int(directory / RECOVERY_POINT_FILE) or 0
    checkpoint_lso = read_int(directory / LOG_START_OFFSET_FILE)

    bases = _segment_bases(directory, config)
    if not bases:
        start = checkpoint_lso or 0
        seg = LogSegment.create(directory, start, config)
        return LoadedLog([seg], start, start, clean, 0, [], checkpoint_lso)

    had_index = {
        b: (directory / f"{b:020d}{INDEX_SUFFIX}").exists() and (directory / f"{b:020d}{TIME_INDEX_SUFFIX}").exists()
        for b in bases
    }
    segments: list[LogSegment] = []
    truncated = 0
    rebuilt: list[int] = []
    for i, base in enumerate(bases):
        is_last = i == len(bases) - 1
        # (Opening the segment creates empty index files if missing: `had_index` was taken before.)
        seg = LogSegment(directory, base, config)
        seg_trusted = had_index[base]
        next_base = bases[i + 1] if not is_last else None
        unflushed = next_base is None or next_base > recovery_point
        cut = 0
        if seg_trusted and not (unflushed and not clean) and _open_trusted(seg):
            if is_last and not seg.recover_tail():
                log.warning("%s: active segment tail invalid after clean shutdown; full recovery", directory.name)
                cut = seg.recover()
                rebuilt.append(base)
        else:
            cut = seg.recover()
            rebuilt.append(base)
            if not is_last:
                seg.on_become_inactive()
        if cut:
            log.warning("%s: truncated %d invalid bytes from segment %d", directory.name, cut, base)
            truncated += cut
        segments.append(seg)
        if cut and not is_last:
            # Offsets after a corrupt segment would follow a hole: drop the rest, as Kafka does.
            for later in bases[i + 1 :]:
                LogSegment(directory, later, config).delete()
                log.warning("%s: deleted segment %d after corruption in %d", directory.name, later, base)
            break

    lso = max(checkpoint_lso or 0, segments[0].base_offset)
    leo = segments[-1].read_next_offset()
    segments[-1].txn_index.truncate_to(leo)  # no aborted transaction past a cut tail
    lso = min(lso, leo)
    return LoadedLog(segments, lso, min(recovery_point, leo), clean, truncated, rebuilt, checkpoint_lso)


__all__ = ["LoadedLog", "load_log"]
