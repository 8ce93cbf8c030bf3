"""The fetch session cache's slots and eviction (KIP-227)."""

from __future__ import annotations

from collections import OrderedDict

from pykbroker.cluster import fetch_sessions
from pykbroker.cluster.fetch_sessions import CachedPartition, FetchSessionCache


def parts(n: int) -> "OrderedDict":
    return OrderedDict(((("t", i), CachedPartition("t", None, i, 0, 1024)) for i in range(n)))


def test_full_cache_evicts_only_idle_or_smaller_sessions(monkeypatch) -> None:
    cache = FetchSessionCache(max_slots=2)
    a, b = cache.create(parts(3)), cache.create(parts(3))
    assert a and b and a.session_id != b.session_id and len(cache) == 2
    assert cache.create(parts(2)) is None  # both busy and not smaller: served without a session
    bigger = cache.create(parts(5))  # the least recently used (a) has fewer partitions: evicted
    assert bigger is not None and cache.get(a.session_id) is None and cache.get(b.session_id) is b
    clock = [1000.0]
    monkeypatch.setattr(fetch_sessions.time, "monotonic", lambda: clock[0])
    cache.get(b.session_id)
    cache.get(bigger.session_id)
    clock[0] += fetch_sessions.EVICTION_S + 1  # both idle past two minutes
    assert cache.create(parts(1)) is not None and cache.get(b.session_id) is None
    assert FetchSessionCache(max_slots=0).create(parts(1)) is None


def test_changed_partitions_are_the_ones_an_incremental_response_keeps() -> None:
    cached = CachedPartition("t", None, 0, 0, 1024)
    base = {"error_code": 0, "records": b"", "high_watermark": 5, "last_stable_offset": 5, "log_start_offset": 0}
    assert cached.changed(base)  # first time: everything is news
    assert not cached.changed(dict(base))
    assert cached.changed({**base, "records": b"x"})
    assert cached.changed({**base, "high_watermark": 6}) and not cached.changed({**base, "high_watermark": 6})
    assert cached.changed({**base, "high_watermark": 6, "error_code": 1})
