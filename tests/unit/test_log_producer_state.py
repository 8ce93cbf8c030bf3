"""ProducerStateManager: sequence/epoch validation of whole requests, duplicates, snapshots, expiry."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pykbroker.log.producer_state import (
    InvalidProducerEpochError,
    OutOfOrderSequenceError,
    ProducerStateManager,
    delete_snapshots_before,
    snapshot_offsets,
    snapshot_path,
)
from pykbroker.protocol.records import BatchHeader


def hdr(pid: int, epoch: int, seq: int, n: int = 1, ts: int = 1_000, offset: int = 0) -> BatchHeader:
    return BatchHeader(base_offset=offset, batch_length=0, partition_leader_epoch=0, magic=2, crc=0, attributes=0,
                       last_offset_delta=n - 1, base_timestamp=ts, max_timestamp=ts, producer_id=pid,
                       producer_epoch=epoch, base_sequence=seq, records_count=n)


def appended(psm: ProducerStateManager, headers: list[BatchHeader], start: int) -> int:
    """Check then record ``headers`` as a log would append them from ``start``; returns the next offset."""
    assert psm.check_batches(headers) is None
    for h in headers:
        psm.record(h, start)
        start += h.last_offset_delta + 1
    return start


def test_two_consecutive_batches_of_one_producer_in_one_request_are_accepted() -> None:
    psm = ProducerStateManager()
    end = appended(psm, [hdr(7, 0, 0, 3)], 0)
    assert psm.check_batches([hdr(7, 0, 3, 2), hdr(7, 0, 5, 4)]) is None
    # ... as the second one alone would not be
    with pytest.raises(OutOfOrderSequenceError):
        psm.check_batches([hdr(7, 0, 5, 4)])
    # a gap inside the request is refused, and nothing is changed by the refusal
    with pytest.raises(OutOfOrderSequenceError, match="expected 5"):
        psm.check_batches([hdr(7, 0, 3, 2), hdr(7, 0, 6, 1)])
    assert psm.entry(7).last_seq == 2  # type: ignore[union-attr]
    end = appended(psm, [hdr(7, 0, 3, 2), hdr(7, 0, 5, 4)], end)
    assert end == 9 and psm.entry(7).last_seq == 8  # type: ignore[union-attr]


def test_new_producers_and_epochs_in_one_request() -> None:
    psm = ProducerStateManager()
    # an unknown producer may start anywhere (KIP-360), and its next batch must follow
    assert psm.check_batches([hdr(1, 0, 40), hdr(1, 0, 41), hdr(2, 3, 0)]) is None
    with pytest.raises(OutOfOrderSequenceError):
        psm.check_batches([hdr(1, 0, 40), hdr(1, 0, 43)])
    appended(psm, [hdr(1, 0, 0, 2)], 0)
    with pytest.raises(InvalidProducerEpochError):
        psm.check_batches([hdr(1, 0, 2), hdr(1, 1, 0), hdr(1, 0, 3)])  # epoch goes back within the request
    with pytest.raises(OutOfOrderSequenceError, match="must start at sequence 0"):
        psm.check_batches([hdr(1, 1, 5)])
    assert psm.check_batches([hdr(1, 1, 0), hdr(1, 1, 1)]) is None
    appended(psm, [hdr(1, 1, 0)], 2)
    with pytest.raises(InvalidProducerEpochError):
        psm.check_batches([hdr(1, 0, 2)])


def test_duplicate_of_one_of_the_last_five_batches() -> None:
    psm = ProducerStateManager()
    offset = 0
    for seq in range(0, 12, 2):  # six batches of two records
        offset = appended(psm, [hdr(9, 0, seq, 2)], offset)
    dup = psm.check_batches([hdr(9, 0, 4, 2)])
    assert dup is not None and (dup.first_offset, dup.last_offset) == (4, 5)
    assert psm.check(hdr(9, 0, 10, 2)) is not None
    with pytest.raises(OutOfOrderSequenceError):  # the oldest batch fell out of the five kept
        psm.check_batches([hdr(9, 0, 0, 2)])
    # a retried request of two batches is recognised by its first
    dup = psm.check_batches([hdr(9, 0, 8, 2), hdr(9, 0, 10, 2)])
    assert dup is not None and dup.first_offset == 8


def test_snapshot_round_trip_keeps_duplicate_detection(tmp_path: Path) -> None:
    psm = ProducerStateManager()
    offset = 0
    for seq in range(0, 5):
        offset = appended(psm, [hdr(3, 2, seq, 1, ts=5_000 + seq)], offset)
    appended(psm, [hdr(4, 0, 0, 10, ts=7_000)], offset)
    path = psm.write_snapshot(tmp_path, 15, fsync=False)
    assert path.name == "00000000000000000015.snapshot" and snapshot_offsets(tmp_path) == [15]
    assert not list(tmp_path.glob("*.tmp"))
    again = ProducerStateManager()
    assert again.load_snapshot(tmp_path, 15) == 15
    assert len(again) == 2 and again.entry(3) == psm.entry(3) and again.entry(4) == psm.entry(4)
    dup = again.check_batches([hdr(3, 2, 2)])
    assert dup is not None and dup.first_offset == 2
    assert again.check_batches([hdr(3, 2, 5)]) is None
    with pytest.raises(InvalidProducerEpochError):
        again.check_batches([hdr(3, 1, 5)])
    # the caller replays headers after the snapshot's offset
    again.rebuild([hdr(4, 0, 10, 2, offset=15)])
    assert again.entry(4).last_seq == 11  # type: ignore[union-attr]
    assert ProducerStateManager().load_snapshot(tmp_path, 14) is None  # none at or below 14


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "version"])
def test_damaged_snapshot_falls_back_to_an_older_one_and_is_kept(
        tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    psm = ProducerStateManager()
    appended(psm, [hdr(1, 0, 0, 1)], 0)
    psm.write_snapshot(tmp_path, 1, fsync=False)
    appended(psm, [hdr(1, 0, 1, 1)], 1)
    newest = psm.write_snapshot(tmp_path, 2, fsync=False)
    raw = bytearray(newest.read_bytes())
    if damage == "flip":
        raw[-3] ^= 0x10
    elif damage == "truncate":
        raw = raw[:-5]
    elif damage == "empty":
        raw = bytearray()
    else:
        raw[1] = 99
    newest.write_bytes(bytes(raw))
    loaded = ProducerStateManager()
    with caplog.at_level(logging.WARNING):
        assert loaded.load_snapshot(tmp_path, 100) == 1
    assert str(newest) in caplog.text
    assert newest.exists()  # never deleted because it could not be read
    assert loaded.entry(1).last_seq == 0  # type: ignore[union-attr]
    snapshot_path(tmp_path, 1).write_bytes(b"junk")
    assert loaded.load_snapshot(tmp_path, 100) is None and len(loaded) == 0


def test_delete_snapshots_before(tmp_path: Path) -> None:
    psm = ProducerStateManager()
    for o in (5, 10, 20):
        psm.write_snapshot(tmp_path, o, fsync=False)
    (tmp_path / "notes.snapshot").write_text("not ours")
    removed = delete_snapshots_before(tmp_path, 10)
    assert [p.name for p in removed] == ["00000000000000000005.snapshot"]
    assert snapshot_offsets(tmp_path) == [10, 20] and (tmp_path / "notes.snapshot").exists()
    assert psm.delete_snapshots_before(tmp_path, 21) and snapshot_offsets(tmp_path) == []


def test_expiry_of_idle_producers() -> None:
    psm = ProducerStateManager()
    appended(psm, [hdr(1, 0, 0, ts=1_000)], 0)
    appended(psm, [hdr(2, 0, 0, ts=5_000)], 1)
    assert psm.expire(now_ms=5_999, expiration_ms=5_000) == []
    assert psm.expire(now_ms=6_000, expiration_ms=5_000) == [1]
    assert len(psm) == 1 and psm.entry(1) is None
    # an expired producer is accepted again from any sequence (KIP-360)
    assert psm.check_batches([hdr(1, 0, 77)]) is None
    assert psm.expire(now_ms=10_000, expiration_ms=5_000) == [2] and len(psm) == 0


def test_non_idempotent_batches_are_ignored() -> None:
    psm = ProducerStateManager()
    assert psm.check_batches([hdr(-1, -1, -1), hdr(-1, -1, -1)]) is None
    psm.record(hdr(-1, -1, -1), 0)
    assert len(psm) == 0
