"""Property: whatever keyed appends and cleaning rounds interleave, the log keeps every key's latest
value at its offset, keeps only records that were appended, and keeps offsets increasing."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cleaner_helpers import append, clean, compacted_config, keyed, open_partition, records
from pykbroker.protocol import compression
from pykbroker.protocol.records import Record, build_batch

_op = st.tuples(st.integers(0, 7), st.one_of(st.none(), st.binary(min_size=0, max_size=40)))
_batch = st.lists(_op, min_size=1, max_size=6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(_batch, min_size=10, max_size=150), clean_every=st.integers(3, 60), segment_bytes=st.integers(450, 1200),
       tombstones_go=st.booleans(), codec=st.sampled_from([compression.NONE, compression.LZ4, compression.GZIP]))
def test_latest_value_per_key_survives_cleaning(batches, clean_every, segment_bytes, tombstones_go, codec) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = compacted_config(internal_segment_bytes=segment_bytes,
                                  delete_retention_ms=0 if tombstones_go else 3_600_000)
        p = open_partition(Path(tmp) / "t-0", config)
        appended: set[tuple[int, bytes, bytes | None]] = set()
        last: dict[bytes, tuple[int, bytes | None]] = {}
        steps: list = []
        for i, b in enumerate(batches, 1):
            steps.append(b)
            if i % clean_every == 0:
                steps.append("clean")
        cleaned = 0
        for step in steps + ["clean", "clean"]:
            if step == "clean":
                cleaned += clean(p) is not None
                continue
            batch = [Record(offset_delta=i, key=b"key%d" % k, value=v) for i, (k, v) in enumerate(step)]
            base = append(p, build_batch(batch, compression=codec))
            for r in batch:
                appended.add((base + r.offset_delta, r.key, r.value))
                last[r.key] = (base + r.offset_delta, r.value)
        event(f"rounds that cleaned: {min(cleaned, 3)}+")
        rows = records(p.log)
        offsets = [o for o, _, _ in rows]
        assert offsets == sorted(set(offsets))
        assert set(rows) <= appended
        kept: dict[bytes, tuple[int, bytes | None]] = {}
        for o, k, v in rows:
            kept[k] = (o, v)
        for key, (offset, value) in last.items():
            if value is not None:
                assert kept[key] == (offset, value)
            else:  # a tombstone: still there, or gone with every older value of its key
                assert kept.get(key, (offset, None)) == (offset, None)
        assert p.log.log_end_offset == (max(o for o, _, _ in appended) + 1 if appended else 0)
        p.log.close()
