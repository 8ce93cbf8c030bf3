"""The log cleaner: offset map, planning, segment groups, what each batch keeps, and the swap."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from cleaner_helpers import append, clean, compacted_config, keyed, latest, open_partition, records
from pykbroker.log.cleaner import CleaningJob, SegmentView, Throttler, plan
from pykbroker.log.cleaner_filter import TxnTracker
from pykbroker.log.offset_map import OffsetMap, slots_for
from pykbroker.log.partition_log import PartitionLog
from pykbroker.log.producer_state import OutOfOrderSequenceError
from pykbroker.log.swap import CLEANED_SUFFIX, SWAP_SUFFIX
from pykbroker.protocol import compression
from pykbroker.protocol.batch_rewrite import delete_horizon_ms
from pykbroker.protocol.records import InvalidRecordError, Record, build_batch, decode_records

# ------------------------------------------------------------------ offset map


def test_offset_map_keeps_latest_offset_and_hashes_long_keys() -> None:
    m = OffsetMap(capacity=10)
    m.put(b"a", 1)
    m.put(b"a", 7)
    long_key = b"x" * 100
    m.put(long_key, 9)
    assert m.get(b"a") == 7 and m.get(long_key) == 9 and m.get(b"missing") == -1
    assert m.get(b"x" * 99) == -1  # a different long key
    assert len(m) == 2 and m.has_room_for(8) and not m.has_room_for(9)
    assert OffsetMap(1).has_room_for(1000)  # an empty map always takes the next batch


def test_slots_follow_kafka_arithmetic() -> None:
    # Kafka: memory / (16-byte MD5 + 8-byte offset) * 0.9 load factor, memory split across threads.
    assert slots_for(128 * 1024 * 1024, 1) == int(128 * 1024 * 1024 // 24 * 0.9)
    assert slots_for(128 * 1024 * 1024, 4) == int(32 * 1024 * 1024 // 24 * 0.9)


# ------------------------------------------------------------------ planning


def _filled(tmp_path: Path, n: int = 300, keys: int = 10, **config: object) -> tuple:
    p = open_partition(tmp_path / "t-0", compacted_config(**config))
    expected = {}
    for i in range(n):
        k = b"k%d" % (i % keys)
        expected[k] = (append(p, keyed(k, b"v%d" % i)), b"v%d" % i)
    return p, expected


def test_plan_covers_whole_segments_below_the_active_one(tmp_path: Path) -> None:
    p, _ = _filled(tmp_path)
    plog = p.log
    found = plan(plog.segments, plog.config, log_start_offset=0, log_end_offset=plog.log_end_offset,
                 last_stable_offset=plog.log_end_offset, first_unflushed=plog.first_unflushed_offset,
                 checkpoint=None, now_ms=0)
    assert found.first_dirty == 0 and found.checkpoint_reset
    assert found.upper == plog.active_segment.base_offset
    assert found.clean_bytes == 0 and found.dirty_bytes == sum(s.size for s in plog.segments[:-1])
    assert found.dirty_ratio == 1.0 and found.should_clean(plog.config)
    # An open transaction at offset 40 bounds it to the segment holding 40.
    bounded = plan(plog.segments, plog.config, log_start_offset=0, log_end_offset=plog.log_end_offset,
                   last_stable_offset=40, first_unflushed=plog.first_unflushed_offset, checkpoint=None, now_ms=0)
    assert bounded.upper <= 40 and bounded.upper in [s.base_offset for s in plog.segments]
    # Everything is clean after the checkpoint: nothing to do.
    done = plan(plog.segments, plog.config, log_start_offset=0, log_end_offset=plog.log_end_offset,
                last_stable_offset=plog.log_end_offset, first_unflushed=plog.first_unflushed_offset,
                checkpoint=plog.active_segment.base_offset, now_ms=0)
    assert done.dirty_bytes == 0 and not done.should_clean(plog.config)


def test_min_compaction_lag_keeps_young_segments_dirty(tmp_path: Path) -> None:
    p, _ = _filled(tmp_path, min_compaction_lag_ms=3_600_000)
    plog = p.log
    found = plan(plog.segments, plog.config, log_start_offset=0, log_end_offset=plog.log_end_offset,
                 last_stable_offset=plog.log_end_offset, first_unflushed=plog.first_unflushed_offset,
                 checkpoint=None, now_ms=plog.segments[0].max_timestamp + 1000)
    assert found.upper == 0 and not found.should_clean(plog.config)
    assert clean(p) is None


def test_max_compaction_lag_cleans_below_the_dirty_ratio(tmp_path: Path) -> None:
    p, _ = _filled(tmp_path, min_cleanable_dirty_ratio=0.99, max_compaction_lag_ms=1)
    assert clean(p) is not None
    q, _ = _filled(tmp_path / "q", min_cleanable_dirty_ratio=0.99)
    assert clean(q) is not None  # all dirty: ratio 1.0 > 0.99 ...
    append(q, keyed(b"k1", b"again"))
    for i in range(60):
        append(q, keyed(b"new%d" % i, b"x"))
    assert clean(q) is None  # ... but now a small dirty part stays below it


def test_groups_fit_one_segment(tmp_path: Path) -> None:
    p, _ = _filled(tmp_path)
    plog = p.log
    views = [SegmentView(s, -1, size, s.base_offset + 10, 1) for s, size in zip(plog.segments, (900, 900, 900, 1500, 100))]
    found = plan(plog.segments, plog.config, log_start_offset=0, log_end_offset=plog.log_end_offset,
                 last_stable_offset=plog.log_end_offset, first_unflushed=plog.first_unflushed_offset, checkpoint=None, now_ms=0)
    job = CleaningJob(plog.directory, plog.config, False, found, views, [], {}, 0, 4096, Throttler(float("inf")))
    sizes = [[v.size for v in g] for g in job.groups(10**9)]
    assert sizes == [[900, 900], [900], [1500, 100]]  # internal.segment.bytes=2048


# ------------------------------------------------------------------ cleaning


def test_cleaning_keeps_latest_value_per_key_at_its_offset(tmp_path: Path) -> None:
    p, expected = _filled(tmp_path, n=600, keys=25)
    before = p.log.size_in_bytes
    result = clean(p)
    assert result is not None and result.bytes_after < result.bytes_before / 5
    rows = records(p.log)
    assert latest(rows) == expected
    assert [o for o, _, _ in rows] == sorted({o for o, _, _ in rows})
    assert p.log.size_in_bytes < before
    assert p.log.cleaner_checkpoint == p.log.active_segment.base_offset
    assert (p.log.directory / "cleaner-offset-checkpoint").read_text().strip() == str(p.log.cleaner_checkpoint)
    assert not [f for f in os.listdir(p.log.directory) if f.endswith((CLEANED_SUFFIX, SWAP_SUFFIX, ".deleted"))]
    # Reads at any offset still work, including removed ones (the next kept batch comes back).
    assert p.log.read(1, 10_000).first_offset > 0
    reopened = PartitionLog.open(p.log.directory, p.log.config, fsync=False)
    assert latest(records(reopened)) == expected
    reopened.close_handles()


def test_tombstones_stay_until_delete_retention_then_go(tmp_path: Path) -> None:
    p, expected = _filled(tmp_path, delete_retention_ms=0)
    dead = append(p, keyed(b"k3", None))
    for i in range(80):  # roll past the tombstone
        append(p, keyed(b"filler%d" % (i % 5), b"f"))
    clean(p)
    rows = latest(records(p.log))
    assert rows[b"k3"] == (dead, None)  # kept, with a delete horizon set on its batch
    horizons = [delete_horizon_ms(h) for h, _ in p.log.iter_batches() if h.base_offset == dead]
    assert horizons and horizons[0] is not None
    for i in range(200):  # more dirty data, then the next round removes it
        append(p, keyed(b"filler%d" % (i % 5), b"g"))
    assert clean(p) is not None
    rows = latest(records(p.log))
    assert b"k3" not in rows and rows[b"k4"] == expected[b"k4"]


def test_tombstone_kept_while_delete_retention_lasts(tmp_path: Path) -> None:
    p, _ = _filled(tmp_path, delete_retention_ms=3_600_000)
    dead = append(p, keyed(b"k3", None))
    for i in range(300):
        append(p, keyed(b"filler%d" % (i % 5), b"f"))
    clean(p)
    for i in range(300):
        append(p, keyed(b"filler%d" % (i % 5), b"g"))
    clean(p)
    assert latest(records(p.log))[b"k3"] == (dead, None)


def test_compressed_batches_are_recompressed_with_their_codec(tmp_path: Path) -> None:
    p = open_partition(tmp_path / "t-0")
    codecs = [compression.GZIP, compression.LZ4, compression.ZSTD, compression.SNAPPY]
    for i in range(120):
        recs = [Record(offset_delta=j, key=b"k%d" % ((i + j) % 7), value=b"v%d-%d" % (i, j)) for j in range(4)]
        append(p, build_batch(recs, compression=codecs[i % 4]))
    expected = latest(records(p.log))
    clean(p)
    assert latest(records(p.log)) == expected
    seen = {h.compression for h, _ in p.log.iter_batches()}
    assert seen <= set(codecs) and len(seen) >= 2


def test_keyless_records_are_refused_on_compacted_topics(tmp_path: Path) -> None:
    p = open_partition(tmp_path / "t-0")
    with pytest.raises(InvalidRecordError, match="without key"):
        p.log.append(build_batch([Record(key=b"a", value=b"1"), Record(offset_delta=1, key=None, value=b"2")]))
    assert p.log.log_end_offset == 0
    plain = PartitionLog.open(tmp_path / "u-0", compacted_config(cleanup_policy="delete"), fsync=False)
    plain.append(build_batch([Record(key=None, value=b"2")]))
    assert plain.log_end_offset == 1


def test_idempotent_producer_keeps_its_last_batch_and_sequence(tmp_path: Path) -> None:
    p = open_partition(tmp_path / "t-0")
    pid, epoch = 42, 0
    for seq in range(50):  # every record of this producer is superseded below
        append(p, keyed(b"k%d" % (seq % 3), b"p", producer_id=pid, producer_epoch=epoch, base_sequence=seq))
    last = p.log.log_end_offset - 1
    for i in range(200):
        append(p, keyed(b"k%d" % (i % 3), b"other"))
    clean(p)
    batches = [(h, data) for h, data in p.log.iter_batches() if h.producer_id == pid]
    assert [h.last_offset for h, _ in batches] == [last]
    assert batches[0][0].records_count == 0 and batches[0][0].base_sequence == 49
    assert p.producers.check(build_batch_header(pid, epoch, 50)) is None
    with pytest.raises(OutOfOrderSequenceError):
        p.producers.check(build_batch_header(pid, epoch, 52))
    # A restart rebuilds the producer from the (empty) batch: the sequence still continues.
    p.log.close()
    q = open_partition(tmp_path / "t-0")
    assert q.producers.check(build_batch_header(pid, epoch, 50)) is None


def build_batch_header(pid: int, epoch: int, seq: int):
    from pykbroker.protocol.records import parse_batch_header

    return parse_batch_header(keyed(b"k", b"v", producer_id=pid, producer_epoch=epoch, base_sequence=seq))


def _txn(p, pid: int, key: bytes, value: bytes, seq: int) -> None:
    append(p, keyed(key, value, producer_id=pid, producer_epoch=0, base_sequence=seq, is_transactional=True))


def _markers(p) -> list[tuple[int, int]]:
    """(producer id, control type) of the markers that still carry their record."""
    from pykbroker.log.cleaner_filter import control_type
    from pykbroker.protocol.batch_rewrite import record_spans

    return [(h.producer_id, control_type(record_spans(d)[2])) for h, d in p.log.iter_batches()
            if h.is_control and h.records_count]


def _fill(p, n: int, value: bytes) -> None:
    for i in range(n):
        append(p, keyed(b"f%d" % (i % 4), value))


def test_aborted_data_goes_committed_stays_markers_go_after_horizon(tmp_path: Path) -> None:
    p = open_partition(tmp_path / "t-0", compacted_config(delete_retention_ms=0))
    _txn(p, 7, b"a", b"aborted", 0)
    _txn(p, 8, b"b", b"committed", 0)
    p.append_marker(7, 0, False, 0)
    p.append_marker(8, 0, True, 0)
    _fill(p, 150, b"x")
    clean(p)
    rows = latest(records(p.log))
    assert b"a" not in rows and rows[b"b"][1] == b"committed"
    # Both markers stay while batches of their transactions are in the log: producer 7's aborted
    # batch is kept empty (its producer's last batch), producer 8's committed record is live.
    assert sorted(_markers(p)) == [(7, 0), (8, 1)]
    assert [h.records_count for h, _ in p.log.iter_batches() if h.producer_id == 7 and not h.is_control] == [0]
    assert p.log.collect_aborted(0, 10**9)  # the kept ABORT marker's index entry was rewritten
    # Producer 7 moves on (a committed transaction): its aborted batch goes, so its ABORT marker
    # gets a delete horizon and, that passed, goes too; key b is overwritten without a transaction.
    _txn(p, 7, b"c", b"later", 1)
    p.append_marker(7, 0, True, 0)
    append(p, keyed(b"b", b"plain"))
    for round_ in range(3):
        _fill(p, 150, b"y%d" % round_)
        clean(p)
    rows = latest(records(p.log))
    assert rows[b"b"][1] == b"plain" and rows[b"c"][1] == b"later" and b"a" not in rows
    assert (7, 0) not in _markers(p) and (7, 1) in _markers(p)
    assert not [t for t in p.log.collect_aborted(0, 10**9) if t.producer_id == 7]


def test_txn_tracker_follows_kafka_rules() -> None:
    from pykbroker.log.txn_index import AbortedTxn
    from pykbroker.protocol.records import CONTROL_TYPE_ABORT, CONTROL_TYPE_COMMIT, parse_batch_header

    def h(offset: int, pid: int, txn: bool = True, control: bool = False):
        raw = build_batch([Record(key=b"k", value=b"v")], base_offset=offset, producer_id=pid, producer_epoch=0,
                          base_sequence=0, is_transactional=txn, is_control=control)
        return parse_batch_header(raw)

    t = TxnTracker.of([AbortedTxn(1, 10, 12, 10)])
    assert t.on_batch(h(10, 1)) is True  # aborted data
    assert t.on_batch(h(11, 2)) is False  # committed data
    assert t.on_control_batch(h(12, 1, control=True), CONTROL_TYPE_ABORT) is False  # data seen: marker stays
    assert t.kept_aborted == [AbortedTxn(1, 10, 12, 10)]
    assert t.on_control_batch(h(13, 2, control=True), CONTROL_TYPE_COMMIT) is False
    assert t.on_control_batch(h(14, 3, control=True), CONTROL_TYPE_COMMIT) is True  # nothing of it seen
    assert t.on_control_batch(h(15, 3, control=True), None) is True  # already emptied


# ------------------------------------------------------------------ swap and recovery


def _cleaned_but_not_swapped(tmp_path: Path, *, commit: bool):
    """Run a round's first group up to (commit=False) or past (commit=True) the .swap rename, as a
    crash would leave it: nothing swapped in memory, no clean shutdown."""
    p, expected = _filled(tmp_path, n=600, keys=25)
    plog = p.log
    found = plan(plog.segments, plog.config, log_start_offset=0, log_end_offset=plog.log_end_offset,
                 last_stable_offset=plog.log_end_offset, first_unflushed=plog.first_unflushed_offset, checkpoint=None, now_ms=0)
    job = CleaningJob.open(plog.directory, plog.segments, plog.log_end_offset, plog.config, False, found, [],
                           {}, 0, 4096, Throttler(float("inf")))
    offsets = job.build_offset_map(10**6)
    group = job.groups(offsets.latest_offset + 1)[0]
    new = job.clean_group(group, job.new_filter(offsets), TxnTracker.of([]))
    if not commit:
        new.rename_suffix(CLEANED_SUFFIX)
    job.close()
    new.close_handles()
    plog.close_handles()  # the crash: no clean-shutdown marker
    return plog.directory, plog.config, expected, group[0].base_offset


@pytest.mark.parametrize("commit", [False, True])
def test_recovery_rolls_back_cleaned_and_completes_swap(tmp_path: Path, commit: bool) -> None:
    directory, config, expected, base = _cleaned_but_not_swapped(tmp_path, commit=commit)
    suffix = SWAP_SUFFIX if commit else CLEANED_SUFFIX
    assert (directory / f"{base:020d}.log{suffix}").exists()
    size_before = (directory / f"{base:020d}.log").stat().st_size
    plog = PartitionLog.open(directory, config, fsync=False)
    assert not [f for f in os.listdir(directory) if f.endswith((CLEANED_SUFFIX, SWAP_SUFFIX))]
    rows = records(plog)
    assert latest(rows) == expected
    assert [o for o, _, _ in rows] == sorted({o for o, _, _ in rows})
    size_after = (directory / f"{base:020d}.log").stat().st_size
    assert (size_after < size_before) == commit  # completed swap: the cleaned (smaller) segment is live
    plog.close_handles()


def test_recovery_after_swap_with_old_files_half_renamed(tmp_path: Path) -> None:
    directory, config, expected, base = _cleaned_but_not_swapped(tmp_path, commit=True)
    # The crash hit after the old segment's .log became .deleted but before the .swap lost its suffix.
    (directory / f"{base:020d}.log").rename(directory / f"{base:020d}.log.deleted")
    plog = PartitionLog.open(directory, config, fsync=False)
    assert latest(records(plog)) == expected
    assert not [f for f in os.listdir(directory) if f.endswith((".deleted", SWAP_SUFFIX))]
    plog.close_handles()


def test_fetch_holding_old_segment_survives_the_swap(tmp_path: Path) -> None:
    p, _ = _filled(tmp_path, n=600, keys=25)
    held = p.log.read(0, 1 << 20, as_file_records=True).records
    before = held.tobytes()
    clean(p)
    assert held.tobytes() == before  # its own descriptors: the old bytes, not the new file's
    held.close()


def test_retention_racing_the_swap_gives_up_the_round(tmp_path: Path) -> None:
    p, expected = _filled(tmp_path, n=600, keys=25)
    plog = p.log
    real = plog.replace_segments
    plog.replace_segments = lambda old, new: False  # type: ignore[method-assign]
    assert clean(p) is None
    plog.replace_segments = real  # type: ignore[method-assign]
    assert not [f for f in os.listdir(plog.directory) if f.endswith((CLEANED_SUFFIX, SWAP_SUFFIX))]
    assert latest(records(plog)) == expected
    assert clean(p) is not None


def test_stop_flag_aborts_cleanly(tmp_path: Path) -> None:
    p, expected = _filled(tmp_path, n=600, keys=25)

    async def cancelled_round() -> None:
        from pykbroker.cluster.log_cleaner import CleanerConfig, LogCleaner

        cleaner = LogCleaner(lambda: [p], CleanerConfig(io_max_bytes_per_second=2000.0))
        with trio.move_on_after(0.5):
            await cleaner.clean_filthiest()

    trio.run(cancelled_round)
    assert not [f for f in os.listdir(p.log.directory) if f.endswith((CLEANED_SUFFIX, SWAP_SUFFIX))]
    assert latest(records(p.log)) == expected


def test_a_batch_that_does_not_parse_marks_the_partition_uncleanable(tmp_path: Path) -> None:
    from pykbroker.cluster.log_cleaner import CleanerConfig, LogCleaner
    from pykbroker.protocol import batch_rewrite

    p, expected = _filled(tmp_path, n=600, keys=25)
    cleaner = LogCleaner(lambda: [p], CleanerConfig())
    real = batch_rewrite.record_spans

    def broken(batch):  # as a record area that does not decode would
        raise InvalidRecordError("bad record length -5 in batch at base offset 0")

    import pykbroker.log.cleaner_filter as cf
    cf.record_spans = broken
    try:
        assert trio.run(cleaner.clean_filthiest) is None
    finally:
        cf.record_spans = real
    assert ("t", 0) in cleaner.uncleanable
    assert trio.run(cleaner.clean_filthiest) is None  # left alone from now on
    assert latest(records(p.log)) == expected
    assert not [f for f in os.listdir(p.log.directory) if f.endswith((CLEANED_SUFFIX, SWAP_SUFFIX))]


def test_broker_cleaner_settings_have_kafka_names_and_defaults() -> None:
    from pykbroker.broker import compacted_topic_configs
    from pykbroker.cluster.log_cleaner import CleanerConfig
    from pykbroker.config import BrokerConfig, ConfigError

    defaults = CleanerConfig.from_broker(BrokerConfig.from_mapping({}))
    assert (defaults.enable, defaults.threads, defaults.backoff_ms, defaults.dedupe_buffer_size) == (
        True, 1, 15_000, 134_217_728)
    assert defaults.io_max_bytes_per_second == 1.7976931348623157e308  # Kafka's Double.MaxValue
    set_ = CleanerConfig.from_broker(BrokerConfig.from_mapping({
        "log.cleaner.enable": "false", "log.cleaner.threads": "3", "log.cleaner.io.max.bytes.per.second": "1048576.5"}))
    assert (set_.enable, set_.threads, set_.io_max_bytes_per_second) == (False, 3, 1048576.5)
    with pytest.raises(ConfigError, match="log.cleaner.threads"):
        BrokerConfig.from_mapping({"log.cleaner.threads": "-1"})
    # Internal topics: Kafka's 100 MiB segments, or internal.segment.bytes below segment.bytes' 1 MiB minimum.
    assert compacted_topic_configs(104857600) == {"cleanup.policy": "compact", "segment.bytes": "104857600"}
    assert compacted_topic_configs(32768) == {"cleanup.policy": "compact", "internal.segment.bytes": "32768"}
