"""Features written once against a small driver interface, for clients that can do all of them
(kafka-python, confluent-kafka, aiokafka). Each driver does one feature step with its own client API."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Sequence

from ..features import COMPRESSIONS
from .common import T0_MS, CheckSet, Ctx, Skip, digest, expect, first_mismatch, value_for, wait_until

BEGINNING = None  # a start position for Driver.consume


@dataclass
class Rec:
    value: bytes | None
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    timestamp: int | None = None   # ms; None lets the client stamp it
    partition: int | None = None   # produce: explicit partition, None = the client's partitioner
    offset: int = -1               # consume: where it was read


class Driver:
    """One client's way of doing each step. Methods raise on errors; ctx bounds every wait."""

    name = "?"

    def create_topic(self, ctx: Ctx, topic: str, partitions: int = 1, configs: dict[str, str] | None = None) -> None:
        raise NotImplementedError

    def delete_topics(self, ctx: Ctx, topics: Sequence[str]) -> None:
        raise NotImplementedError

    def metadata(self, ctx: Ctx) -> tuple[set[str], list[tuple[int, str, int]]]:
        """(topic names, [(broker id, host, port)])."""
        raise NotImplementedError

    def partition_count(self, ctx: Ctx, topic: str) -> int:
        """Partitions of `topic` as the admin API describes it (raise if unknown)."""
        raise NotImplementedError

    def produce(self, ctx: Ctx, topic: str, records: Sequence[Rec], *, acks: object = "all",
                compression: str = "none", idempotent: bool = False) -> list[tuple[int, int]]:
        """Sends all records, waits for them; (partition, offset) per record, offset -1 when unknown."""
        raise NotImplementedError

    def consume(self, ctx: Ctx, topic: str, starts: dict[int, int | None], count: int, *,
                read_committed: bool = False) -> list[Rec]:
        """Assigns the partitions of `starts` (seeking to each offset, None = beginning), reads `count`
        (isolation level read_uncommitted, or read_committed)."""
        raise NotImplementedError

    def transactional_produce(self, ctx: Ctx, topic: str, transactional_id: str,
                              transactions: Sequence[tuple[Sequence[Rec], bool]]) -> None:
        """One transactional producer: for each (records, commit) begins a transaction, sends the records
        and waits for their acks, then commits (True) or aborts (False) it."""
        raise NotImplementedError

    def end_offsets(self, ctx: Ctx, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        raise NotImplementedError

    def offset_for_time(self, ctx: Ctx, topic: str, partition: int, ts: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record with timestamp >= ts, None when there is none."""
        raise NotImplementedError

    def partition_for_key(self, key: bytes, partitions: int) -> int:
        """Where this client's default partitioner puts `key`."""
        raise NotImplementedError

    def codec_missing(self, codec: str) -> str | None:
        """Why this client cannot use `codec` here (a missing library), or None."""
        return None

    def group_consume(self, ctx: Ctx, topic: str, group: str, count: int) -> list[Rec]:
        """Subscribes as a member of `group`, reads `count` records, commits the offset after the last, leaves."""
        raise NotImplementedError

    def group_list_describe(self, ctx: Ctx, topic: str, group: str) -> dict:
        """With one member of `group` active on `topic`: {"listed": bool, "state": str, "members": int}."""
        raise NotImplementedError


def _records(n: int, size: int = 40, keyed: bool = True) -> list[Rec]:
    return [Rec(value=value_for(i, size), key=(b"k%d" % i) if keyed else None) for i in range(n)]


def _check_round_trip(got: Sequence[Rec], sent: Sequence[Rec], *, offsets_from: int = 0) -> None:
    expect(len(got) == len(sent), f"consumed {len(got)} records, produced {len(sent)}")
    diff = first_mismatch([r.value for r in got], [r.value for r in sent])
    expect(not diff, f"values differ: {diff}")
    diff = first_mismatch([r.key for r in got], [r.key for r in sent])
    expect(not diff, f"keys differ: {diff}")
    diff = first_mismatch([r.offset for r in got], range(offsets_from, offsets_from + len(sent)))
    expect(not diff, f"offsets differ: {diff}")


def _check_acked(acked: Sequence[tuple[int, int]], partition: int, first: int = 0) -> None:
    diff = first_mismatch(acked, [(partition, first + i) for i in range(len(acked))])
    expect(not diff, f"acknowledged (partition, offset) differ: {diff}")


def register(checks: CheckSet, driver: Driver) -> None:
    """Adds every scenario feature to `checks`, each bound to `driver`."""

    @checks.feature("metadata")
    def metadata(ctx: Ctx) -> None:
        topic = ctx.topic()
        driver.create_topic(ctx, topic, 2)
        topics, brokers = wait_until(ctx, lambda: _listed(driver, ctx, topic), f"{topic} in the topic list")
        expect(brokers, "no brokers in the metadata")
        for node_id, host, port in brokers:
            expect(host and 0 < port < 65536, f"broker {node_id} has a bad address {host}:{port}")
        count = wait_until(ctx, lambda: driver.partition_count(ctx, topic), f"{topic} to be described")
        expect(count == 2, f"described {count} partitions, created 2")
        ctx.note(f"{len(brokers)} broker(s): " + ", ".join(f"{i}@{h}:{p}" for i, h, p in brokers))

    @checks.feature("admin-topics")
    def admin_topics(ctx: Ctx) -> None:
        topic = ctx.topic()
        driver.create_topic(ctx, topic, 3, {"retention.ms": "3600000"})
        count = wait_until(ctx, lambda: driver.partition_count(ctx, topic), f"{topic} to be described")
        expect(count == 3, f"described {count} partitions, created 3")
        driver.delete_topics(ctx, [topic])
        ctx.topics.remove(topic)
        wait_until(ctx, lambda: topic not in driver.metadata(ctx)[0], f"{topic} to leave the topic list")

    def produce_with_acks(acks: object) -> None:
        @checks.feature(f"produce-acks-{acks}")
        def produce_acks(ctx: Ctx) -> None:
            topic = ctx.topic()
            driver.create_topic(ctx, topic, 1)
            sent = _records(100)
            acked = driver.produce(ctx, topic, sent, acks=acks)
            if acks != 0:
                _check_acked(acked, 0)
            _check_round_trip(driver.consume(ctx, topic, {0: BEGINNING}, len(sent)), sent)

    for acks in (0, 1, "all"):
        produce_with_acks(acks)

    def compression(codec: str) -> None:
        @checks.feature(f"compression-{codec}")
        def round_trip(ctx: Ctx) -> None:
            missing = driver.codec_missing(codec)
            if missing:
                raise Skip(missing)
            topic = ctx.topic()
            driver.create_topic(ctx, topic, 1)
            sent = _records(1000, size=200)
            _check_acked(driver.produce(ctx, topic, sent, compression=codec), 0)
            _check_round_trip(driver.consume(ctx, topic, {0: BEGINNING}, len(sent)), sent)

    for codec in COMPRESSIONS:
        compression(codec)

    @checks.feature("headers")
    def headers(ctx: Ctx) -> None:
        topic = ctx.topic()
        driver.create_topic(ctx, topic, 1)
        sent = _records(30)
        for i, rec in enumerate(sent):
            if i % 3 == 0:
                rec.headers = [("trace", b"t-%d" % i), ("trace", b"second"), ("empty", b""),
                               ("ünïcode", bytes([0, 255, i]))]
            elif i % 3 == 1:
                rec.headers = [("one", b"%d" % i)]
        driver.produce(ctx, topic, sent)
        got = driver.consume(ctx, topic, {0: BEGINNING}, len(sent))
        _check_round_trip(got, sent)
        diff = first_mismatch([r.headers for r in got], [r.headers for r in sent])
        expect(not diff, f"headers differ: {diff}")

    @checks.feature("large-message")
    def large_message(ctx: Ctx) -> None:
        topic = ctx.topic()
        driver.create_topic(ctx, topic, 1)
        big = random.Random(7).randbytes(900 * 1024)  # incompressible, under the 1 MiB defaults
        sent = [Rec(value=b"before"), Rec(value=big, key=b"big"), Rec(value=b"after")]
        _check_acked(driver.produce(ctx, topic, sent), 0)
        got = driver.consume(ctx, topic, {0: BEGINNING}, len(sent))
        expect(len(got) == 3, f"consumed {len(got)} records, produced 3")
        expect(got[1].value is not None and len(got[1].value) == len(big),
               f"large value came back with {len(got[1].value or b'')} bytes, sent {len(big)}")
        expect(digest(got[1].value) == digest(big), "large value came back with different bytes")
        _check_round_trip(got, sent)

    @checks.feature("ordering-5000")
    def ordering(ctx: Ctx) -> None:
        topic = ctx.topic()
        driver.create_topic(ctx, topic, 1)
        sent = _records(5000, keyed=False)
        for rec in sent:
            rec.partition = 0
        _check_acked(driver.produce(ctx, topic, sent), 0)
        _check_round_trip(driver.consume(ctx, topic, {0: BEGINNING}, len(sent)), sent)

    @checks.feature("keyed-partitioning")
    def keyed(ctx: Ctx) -> None:
        topic = ctx.topic()
        driver.create_topic(ctx, topic, 4)
        wait_until(ctx, lambda: driver.partition_count(ctx, topic) == 4, f"{topic} with 4 partitions")
        sent = [Rec(value=b"v%d" % i, key=b"user-%d" % i) for i in range(200)]
        want = {r.key: driver.partition_for_key(r.key, 4) for r in sent}
        acked = driver.produce(ctx, topic, sent)
        for rec, (partition, _) in zip(sent, acked):
            expect(partition == want[rec.key],
                   f"key {rec.key!r} acknowledged on partition {partition}, the partitioner says {want[rec.key]}")
        got = driver.consume(ctx, topic, {p: BEGINNING for p in range(4)}, len(sent))
        expect(len(got) == len(sent), f"consumed {len(got)} records, produced {len(sent)}")
        for rec in got:
            expect(rec.key in want, f"unexpected key {rec.key!r}")
            expect(rec.partition == want[rec.key],
                   f"key {rec.key!r} read from partition {rec.partition}, the partitioner says {want[rec.key]}")
        used = sorted({r.partition for r in got})
        expect(len(used) >= 3, f"200 keys landed on partitions {used} only")
        ctx.note(f"partitions used {used}")

    @checks.feature("consume-assign")
    def consume_assign(ctx: Ctx) -> None:
        topic = ctx.topic()
        driver.create_topic(ctx, topic, 2)
        sent = _records(50)
        for i, rec in enumerate(sent):
            rec.partition = 0 if i < 30 else 1
        acked = driver.produce(ctx, topic, sent)
        _check_acked(acked[:30], 0)
        _check_acked(acked[30:], 1)
        got = driver.consume(ctx, topic, {0: BEGINNING, 1: BEGINNING}, len(sent))
        by_partition = {p: [r for r in got if r.partition == p] for p in (0, 1)}
        _check_round_trip(by_partition[0], sent[:30])
        _check_round_trip(by_partition[1], sent[30:])
        ends = driver.end_offsets(ctx, topic, [0, 1])
        expect(ends == {0: 30, 1: 20}, f"end offsets {ends}, want {{0: 30, 1: 20}}")

    @checks.feature("seek-offset")
    def seek(ctx: Ctx) -> None:
        topic = ctx.topic()
        driver.create_topic(ctx, topic, 1)
        sent = _records(100)
        _check_acked(driver.produce(ctx, topic, sent), 0)
        _check_round_trip(driver.consume(ctx, topic, {0: 37}, 10), sent[37:47], offsets_from=37)
        _check_round_trip(driver.consume(ctx, topic, {0: 99}, 1), sent[99:], offsets_from=99)

    @checks.feature("offsets-for-times")
    def offsets_for_times(ctx: Ctx) -> None:
        topic = ctx.topic()
        driver.create_topic(ctx, topic, 1)
        sent = _records(30)
        for i, rec in enumerate(sent):
            rec.timestamp = T0_MS + i * 1000
        _check_acked(driver.produce(ctx, topic, sent), 0)
        got = driver.consume(ctx, topic, {0: BEGINNING}, len(sent))
        diff = first_mismatch([r.timestamp for r in got], [r.timestamp for r in sent])
        expect(not diff, f"timestamps differ: {diff}")
        for ts, want in ((T0_MS + 10_500, (11, T0_MS + 11_000)), (T0_MS + 5_000, (5, T0_MS + 5_000)),
                         (T0_MS - 60_000, (0, T0_MS)), (T0_MS + 60_000, None)):
            found = driver.offset_for_time(ctx, topic, 0, ts)
            expect(found == want, f"offset for T0{ts - T0_MS:+d} ms: got {found}, want {want}")

    @checks.feature("idempotent-producer")
    def idempotent(ctx: Ctx) -> None:
        topic = ctx.topic()
        driver.create_topic(ctx, topic, 1)
        sent = _records(300)
        for rec in sent:
            rec.partition = 0
        _check_acked(driver.produce(ctx, topic, sent, idempotent=True), 0)
        _check_round_trip(driver.consume(ctx, topic, {0: BEGINNING}, len(sent)), sent)

    @checks.feature("transactions")
    def transactions(ctx: Ctx) -> None:
        topic = ctx.topic()
        driver.create_topic(ctx, topic, 1)
        n = 10

        def records(tag: bytes) -> list[Rec]:
            return [Rec(value=b"%s-%03d" % (tag, i), key=b"k%d" % i, partition=0) for i in range(n)]

        first, aborted, last = records(b"commit-1"), records(b"abort"), records(b"commit-2")
        driver.transactional_produce(ctx, topic, ctx.transactional_id(), [(first, True), (aborted, False),
                                                                          (last, True)])
        # Each transaction ends with a control record (its COMMIT or ABORT marker), which takes an offset
        # and is never handed to the application: 0-9 first, 10 marker, 11-20 aborted, 21 marker, 22-31 last.
        committed = driver.consume(ctx, topic, {0: BEGINNING}, 2 * n, read_committed=True)
        _check_round_trip(committed[:n], first)
        _check_round_trip(committed[n:], last, offsets_from=2 * n + 2)
        everything = driver.consume(ctx, topic, {0: BEGINNING}, 3 * n)
        _check_round_trip(everything[:n], first)
        _check_round_trip(everything[n:2 * n], aborted, offsets_from=n + 1)
        _check_round_trip(everything[2 * n:], last, offsets_from=2 * n + 2)
        ends = driver.end_offsets(ctx, topic, [0])
        expect(ends == {0: 3 * n + 3}, f"end offsets {ends}, want {{0: {3 * n + 3}}} (30 records, 3 markers)")

    @checks.feature("compaction")
    def compaction(ctx: Ctx) -> None:
        topic = ctx.topic()
        # segment.ms rolls a segment on the first append 100 ms after it began (the cleaner never
        # touches the active one); the broker's own log.cleaner.backoff.ms (Kafka: 15 s) paces the rest.
        driver.create_topic(ctx, topic, 1, {"cleanup.policy": "compact", "segment.ms": "100",
                                            "min.cleanable.dirty.ratio": "0.01"})
        first = [Rec(value=b"first-%d" % i, key=b"key-%d" % i, partition=0) for i in range(10)]
        second = [Rec(value=b"second-%d" % i, key=b"key-%d" % i, partition=0) for i in range(5)]
        roll = [Rec(value=b"roll", key=b"roll", partition=0)]
        acked = []
        for records in (first, second, roll):
            acked += driver.produce(ctx, topic, records)
            time.sleep(0.3)
        _check_acked(acked, 0)
        latest = {r.key: (offset, r.value) for r, (_, offset) in zip(first + second + roll, acked)}
        want = sorted((offset, key, value) for key, (offset, value) in latest.items())

        def compacted() -> bool:
            got = driver.consume(ctx, topic, {0: BEGINNING}, len(want))
            return [(r.offset, r.key, r.value) for r in got] == want

        wait_until(ctx, compacted, "the log cleaner to leave one record per key", interval=1.0)
        ends = driver.end_offsets(ctx, topic, [0])
        expect(ends == {0: len(acked)}, f"end offsets {ends}, want {{0: {len(acked)}}}: cleaning keeps offsets")

    @checks.feature("group-commit-resume")
    def group_commit_resume(ctx: Ctx) -> None:
        topic, group = ctx.topic(), ctx.group()
        driver.create_topic(ctx, topic, 1)
        sent = _records(100)
        _check_acked(driver.produce(ctx, topic, sent), 0)
        first = driver.group_consume(ctx, topic, group, 60)
        _check_round_trip(first, sent[:60])
        second = driver.group_consume(ctx, topic, group, 40)
        expect(second, "the second member read nothing")
        expect(second[0].offset == 60, f"the second member started at offset {second[0].offset}, committed 60")
        _check_round_trip(second, sent[60:], offsets_from=60)

    @checks.feature("group-list-describe")
    def group_list_describe(ctx: Ctx) -> None:
        topic, group = ctx.topic(), ctx.group()
        driver.create_topic(ctx, topic, 1)
        driver.produce(ctx, topic, _records(10))
        info = driver.group_list_describe(ctx, topic, group)
        expect(info.get("listed"), f"group {group} not in the group list")
        expect(str(info.get("state", "")).lower() == "stable", f"group state {info.get('state')!r}, want Stable")
        expect(info.get("members") == 1, f"group has {info.get('members')} members, want 1")


def _listed(driver: Driver, ctx: Ctx, topic: str) -> tuple[set[str], list] | None:
    topics, brokers = driver.metadata(ctx)
    return (topics, brokers) if topic in topics else None
