"""Committed offsets as __consumer_offsets records: replay, tombstones, expiry."""

from __future__ import annotations

from pykbroker.coordinator.offsets import OffsetStore
from pykbroker.coordinator.offsets_schema import CommittedOffset


def test_replaying_the_records_rebuilds_the_same_view() -> None:
    live = OffsetStore()
    log: list[bytes] = []

    def write(batch: bytes) -> None:
        log.append(batch)
        live.apply(batch)

    write(live.commit_records("g1", {("t", 0): CommittedOffset(5, -1, "m", 1000),
                                     ("t", 1): CommittedOffset(7, 3, "", 1000)}))
    write(live.commit_records("g1", {("t", 0): CommittedOffset(9, -1, "", 2000)}))
    write(live.commit_records("g2", {("u", 0): CommittedOffset(1, -1, "", 2000)}))
    write(live.delete_records("g1", [("t", 1)]))
    write(live.delete_group_records("g2"))
    replayed = OffsetStore()
    for batch in log:
        replayed.apply(batch)
    assert replayed.get("g1") == live.get("g1") == {("t", 0): CommittedOffset(9, -1, "", 2000)}
    assert replayed.groups() == ["g1"]


def test_offsets_of_groups_without_members_expire() -> None:
    store = OffsetStore()
    store.apply(store.commit_records("old", {("t", 0): CommittedOffset(1, -1, "", 1_000)}))
    store.apply(store.commit_records("busy", {("t", 0): CommittedOffset(1, -1, "", 1_000)}))
    store.apply(store.commit_records("new", {("t", 0): CommittedOffset(1, -1, "", 90_000)}))
    expired = store.expired(retention_ms=60_000, now_ms=100_000, active_groups={"busy"})
    assert expired == {"old": [("t", 0)]}
