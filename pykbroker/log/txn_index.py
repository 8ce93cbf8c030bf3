"""The aborted-transaction index of one segment: Kafka's ``.txnindex`` file.

When a transaction is aborted, the partition appends ``(producer id, first offset, last offset,
last stable offset)`` to the index of the segment holding the ABORT marker. A read_committed
Fetch reports the aborted transactions overlapping the range it returns, and the consumer drops
their records. The file is Kafka's format: entries of 34 bytes, ``>hqqqq`` (version 0, producer
id, first offset, last offset = the marker's offset, last stable offset when it completed).

Entries are appended with one pwrite each (the file is opened on the first abort), fsynced with
the segment, and cut back with the log on recovery.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import NamedTuple

from .errors import KafkaStorageError

TXN_INDEX_SUFFIX = ".txnindex"
_ENTRY = struct.Struct(">hqqqq")
VERSION = 0


class AbortedTxn(NamedTuple):
    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


class TransactionIndex:
    """Aborted transactions whose ABORT marker is in one segment, in marker order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: list[AbortedTxn] = []
        self._fd = -1
        if path.exists():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        whole = len(data) - len(data) % _ENTRY.size  # a torn last entry is dropped
        for (version, *fields) in _ENTRY.iter_unpack(data[:whole]):
            if version != VERSION:
                raise KafkaStorageError(f"{self.path}: unknown transaction index entry version {version}")
            self.entries.append(AbortedTxn(*fields))

    def append(self, txn: AbortedTxn) -> None:
        if self.entries and txn.last_offset <= self.entries[-1].last_offset:
            return  # replayed after a restart: already indexed
        if self._fd < 0:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        size = len(self.entries) * _ENTRY.size
        os.pwrite(self._fd, _ENTRY.pack(VERSION, *txn), size)
        self.entries.append(txn)

    def collect(self, fetch_offset: int, upper_bound: int) -> list[AbortedTxn]:
        """Kafka's collectAbortedTxns: aborted transactions overlapping [fetch_offset, upper_bound)."""
        return [t for t in self.entries if t.last_offset >= fetch_offset and t.first_offset < upper_bound]

    def truncate_to(self, offset: int) -> None:
        """Drop entries whose marker is at or above ``offset`` (the log was cut there)."""
        keep = [t for t in self.entries if t.last_offset < offset]
        if len(keep) == len(self.entries):
            return
        self.entries = keep
        if self._fd >= 0:
            os.ftruncate(self._fd, len(keep) * _ENTRY.size)
        elif self.path.exists():
            os.truncate(self.path, len(keep) * _ENTRY.size)

    def flush(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def delete(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
