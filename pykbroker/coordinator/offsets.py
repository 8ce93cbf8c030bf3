"""Committed offsets: an in-memory view of __consumer_offsets, rebuilt by replaying it.

Every change is first turned into records (`*_records` methods return a batch to append to the
internal topic) and then applied; loading replays the same records, so the view after a restart
is the view before it.
"""

from __future__ import annotations

import time
from typing import Iterable

from ..protocol.records import Record, build_batch, decode_records
from .offsets_schema import (
    CommittedOffset, OffsetKey, decode_key, decode_offset_value, encode_group_key, encode_offset_key,
    encode_offset_value,
)


class OffsetStore:
    def __init__(self) -> None:
        self._groups: dict[str, dict[tuple[str, int], CommittedOffset]] = {}

    # ------------------------------------------------------------------ reads

    def groups(self) -> list[str]:
        return list(self._groups)

    def get(self, group: str) -> dict[tuple[str, int], CommittedOffset]:
        return dict(self._groups.get(group, {}))

    def committed(self, group: str, topic: str, partition: int) -> CommittedOffset | None:
        return self._groups.get(group, {}).get((topic, partition))

    # ------------------------------------------------------------------ changes as records

    def commit_records(self, group: str, offsets: dict[tuple[str, int], CommittedOffset], *,
                       producer_id: int = -1, producer_epoch: int = -1) -> bytes:
        """Offset commit records; with a producer, a transactional batch of it (TxnOffsetCommit)."""
        return records_batch([(encode_offset_key(OffsetKey(group, t, p)), encode_offset_value(v))
                              for (t, p), v in offsets.items()], producer_id=producer_id, producer_epoch=producer_epoch)

    def install(self, group: str, offsets: dict[tuple[str, int], CommittedOffset]) -> None:
        """Offsets whose records are stored already (a committed transaction's)."""
        self._groups.setdefault(group, {}).update(offsets)

    def delete_records(self, group: str, partitions: Iterable[tuple[str, int]]) -> bytes:
        return records_batch([(encode_offset_key(OffsetKey(group, t, p)), None) for t, p in partitions])

    def delete_group_records(self, group: str) -> bytes:
        pairs: list[tuple[bytes, bytes | None]] = [
            (encode_offset_key(OffsetKey(group, t, p)), None) for t, p in self._groups.get(group, {})]
        pairs.append((encode_group_key(group), None))
        return records_batch(pairs)

    def expired(self, retention_ms: int, now_ms: int, active_groups: set[str]) -> dict[str, list[tuple[str, int]]]:
        """Offsets of groups without members older than offsets.retention.minutes (Kafka 2.1+ rule)."""
        out: dict[str, list[tuple[str, int]]] = {}
        for group, offsets in self._groups.items():
            if group in active_groups:
                continue
            old = [tp for tp, v in offsets.items() if v.commit_timestamp + retention_ms < now_ms]
            if old:
                out[group] = old
        return out

    # ------------------------------------------------------------------ applying records

    def apply(self, batch: bytes) -> None:
        for record in decode_records(batch):
            if record.key is not None:
                self.apply_record(decode_key(record.key), record.value)

    def apply_record(self, key: OffsetKey | str | None, value: bytes | None) -> None:
        """One decoded record: an offset commit or its tombstone, or a group's tombstone."""
        if isinstance(key, OffsetKey):
            offsets = self._groups.setdefault(key.group, {})
            if value is None:
                offsets.pop((key.topic, key.partition), None)
                if not offsets:
                    del self._groups[key.group]
            else:
                offsets[(key.topic, key.partition)] = decode_offset_value(value)
        elif isinstance(key, str) and value is None:
            self._groups.pop(key, None)

    def drop(self, group: str) -> None:
        """Forget a group's offsets in memory only (its partition was unloaded; the records stay)."""
        self._groups.pop(group, None)

def records_batch(pairs: list[tuple[bytes, bytes | None]], *, producer_id: int = -1, producer_epoch: int = -1) -> bytes:
    """A batch of the coordinator's records; transactional when a producer id is given."""
    now = int(time.time() * 1000)
    return build_batch([Record(i, 0, k, v, []) for i, (k, v) in enumerate(pairs)], base_timestamp=now,
                       producer_id=producer_id, producer_epoch=producer_epoch, is_transactional=producer_id >= 0)
