"""Leader epochs of one replica's log (Kafka's LeaderEpochFileCache), kept in ``leader-epoch-checkpoint``.

Each entry is (epoch, start offset): the first offset written under that leader epoch. A leader adds
its epoch at its log end when it takes over; a follower adds the epochs of the batches it copies.
``end_offset_for`` answers OffsetForLeaderEpoch (KIP-101/KIP-279): where epoch E ends in this log,
i.e. the start of the first later epoch, or the log end for the latest one. A follower that
diverged truncates to where its and the leader's histories part (``truncate_from_end``).

File format (Kafka's CheckpointFile): a version line "0", a count line, then "epoch offset" lines,
replaced atomically on every change (changes are rare: one per leadership or truncation).
"""

from __future__ import annotations

import bisect
import logging
from pathlib import Path

from ..log.checkpoint import write_atomic

log = logging.getLogger("pykbroker.epochs")

FILE_NAME = "leader-epoch-checkpoint"
UNDEFINED = -1


class LeaderEpochCache:
    def __init__(self, directory: Path, *, fsync: bool = True) -> None:
        self.path = directory / FILE_NAME
        self.fsync = fsync
        self.entries: list[tuple[int, int]] = _read(self.path)

    @property
    def latest_epoch(self) -> int:
        return self.entries[-1][0] if self.entries else UNDEFINED

    def assign(self, epoch: int, start_offset: int) -> bool:
        """Record that ``epoch`` starts at ``start_offset`` (ignored unless newer than the latest);
        True when the file must be written (``persist``, in a worker thread)."""
        if epoch < 0 or (self.entries and epoch <= self.entries[-1][0]):
            return False
        while self.entries and self.entries[-1][1] >= start_offset:
            self.entries.pop()  # an epoch that wrote nothing is superseded (as Kafka's cache does)
        self.entries.append((epoch, start_offset))
        return True

    def end_offset_for(self, epoch: int, log_end_offset: int) -> tuple[int, int]:
        """(largest epoch <= ``epoch``, where it ends); (-1, -1) when ``epoch`` precedes every entry."""
        if not self.entries or epoch < self.entries[0][0]:
            return UNDEFINED, UNDEFINED
        if epoch >= self.entries[-1][0]:
            return self.entries[-1][0], log_end_offset
        i = bisect.bisect_right([e for e, _ in self.entries], epoch)
        return self.entries[i - 1][0], self.entries[i][1]

    def truncate_from_end(self, end_offset: int) -> bool:
        """The log was truncated to ``end_offset``: drop epochs starting at or after it."""
        before = len(self.entries)
        self.entries = [(e, o) for e, o in self.entries if o < end_offset]
        return len(self.entries) != before

    def persist(self) -> None:
        lines = ["0", str(len(self.entries)), *(f"{e} {o}" for e, o in self.entries)]
        write_atomic(self.path, ("\n".join(lines) + "\n").encode(), fsync=self.fsync)


def _read(path: Path) -> list[tuple[int, int]]:
    """The checkpoint's entries; a damaged file is reported and ignored (the follower then re-copies
    from the leader: nothing is deleted for being unreadable, the log is kept as is)."""
    try:
        lines = path.read_text().split("\n")
    except FileNotFoundError:
        return []
    try:
        if lines[0].strip() != "0":
            raise ValueError(f"version {lines[0]!r}")
        count = int(lines[1])
        entries = [(int(e), int(o)) for e, o in (line.split() for line in lines[2:2 + count])]
        if len(entries) != count:
            raise ValueError(f"{len(entries)} entries, header says {count}")
        return entries
    except (ValueError, IndexError) as e:
        log.error("%s is unreadable (%s): leader epochs of this replica start afresh", path, e)
        return []
