"""The high-watermark checkpoint of a log dir (Kafka's ``replication-offset-checkpoint``).

A replica's high watermark lives in memory; without a checkpoint a restarted replica would start
at 0 (consumers see nothing until the leader's next fetch answer) or, worse, at its log end
(serving a tail that may never have been committed). Kafka writes every partition's high
watermark to this file every ``replica.high.watermark.checkpoint.interval.ms`` and reads it at
start-up, clamped to the log's [log start, log end]. Same text format as Kafka's
CheckpointFile: a version line (0), a count line, then ``topic partition offset`` lines.
Written atomically (temporary file, fsync, rename, directory fsync) from a worker thread.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

log = logging.getLogger("pykbroker.replication")

FILE_NAME = "replication-offset-checkpoint"
VERSION = 0

Offsets = dict[tuple[str, int], int]


def read_checkpoint(directory: Path) -> Offsets:
    """The checkpointed high watermarks; a missing file is an empty checkpoint, a malformed one is
    logged (naming the file and line) and ignored: high watermarks then start at 0, as without it."""
    path = Path(directory) / FILE_NAME
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        log.error("%s: unreadable (%s); high watermarks start at 0", path, e)
        return {}
    try:
        if int(lines[0]) != VERSION:
            raise ValueError(f"unsupported version {lines[0]!r}")
        count = int(lines[1])
        entries = lines[2:]
        if len(entries) != count:
            raise ValueError(f"{count} entries announced, {len(entries)} present")
        offsets: Offsets = {}
        for n, line in enumerate(entries, start=3):
            topic, partition, offset = line.rsplit(" ", 2) if line.count(" ") >= 2 else (line, "", "")
            if not partition:
                raise ValueError(f"line {n}: {line!r} is not 'topic partition offset'")
            offsets[(topic, int(partition))] = int(offset)
        return offsets
    except (IndexError, ValueError) as e:
        log.error("%s: malformed (%s); high watermarks start at 0", path, e)
        return {}


def write_checkpoint(directory: Path, offsets: Mapping[tuple[str, int], int], *, fsync: bool = True) -> None:
    """Worker thread: replace the checkpoint atomically (a crash leaves the old or the new file)."""
    directory = Path(directory)
    path = directory / FILE_NAME
    tmp = directory / (FILE_NAME + ".tmp")
    body = [str(VERSION), str(len(offsets))] + [f"{t} {p} {o}" for (t, p), o in sorted(offsets.items())]
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(body) + "\n")
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if fsync:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def initial_high_watermark(checkpointed: int | None, log_start_offset: int, log_end_offset: int) -> int:
    """Kafka's Log.updateHighWatermark at load: the checkpoint clamped to [log start, log end]."""
    if checkpointed is None:
        return log_start_offset
    return max(log_start_offset, min(checkpointed, log_end_offset))
