"""The cleaner's key -> latest offset map (Kafka's ``SkimpyOffsetMap``).

Kafka sizes it by ``log.cleaner.dedupe.buffer.size`` split across ``log.cleaner.threads``: 24
bytes a slot (an MD5 of the key + an 8-byte offset), filled to ``log.cleaner.io.buffer.load.factor``
(0.9). The same slot count bounds this map, so one cleaning pass covers as many keys as Kafka's
would; when it is full the pass stops at a batch boundary and the next pass continues from there.
Keys shorter than 16 bytes are stored as they are (exact, and cheaper than hashing); longer ones
by their MD5, as Kafka does. A Python dict takes more memory per entry than Kafka's packed array.
"""

from __future__ import annotations

import hashlib

BYTES_PER_ENTRY = 16 + 8  # Kafka: MD5 digest + offset
LOAD_FACTOR = 0.9


def slots_for(dedupe_buffer_size: int, threads: int) -> int:
    """How many keys one cleaner thread's map holds (Kafka: memory / bytesPerEntry * load factor)."""
    memory = min(dedupe_buffer_size // max(1, threads), 2**31 - 1)
    return max(1, int(memory // BYTES_PER_ENTRY * LOAD_FACTOR))


def _digest(key: bytes) -> bytes:
    return key if len(key) < 16 else hashlib.md5(key).digest()


class OffsetMap:
    """Latest offset of every key seen, and the last offset put through the map."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._map: dict[bytes, int] = {}
        #: The last offset of the last batch read into the map (-1: none): records after it are
        #: newer than anything the map knows and are kept whatever their key.
        self.latest_offset = -1

    def put(self, key: bytes, offset: int) -> None:
        self._map[_digest(key)] = offset

    def get(self, key: bytes) -> int:
        """The key's latest offset, or -1 if the map has not seen it."""
        return self._map.get(_digest(key), -1)

    def has_room_for(self, records: int) -> bool:
        """Whether ``records`` more keys certainly fit (an empty map always takes a batch)."""
        return not self._map or len(self._map) + records <= self.capacity

    def __len__(self) -> int:
        return len(self._map)

    @property
    def utilization(self) -> float:
        return len(self._map) / self.capacity
