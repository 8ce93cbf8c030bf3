"""Shared by the client-quotas checks: setting a quota without a client admin API, and the bound a
throttled producer must stay under on any broker with Kafka's default quota window.

A broker measures a client's byte rate over quota.window.num (11) samples of quota.window.size.seconds
(1 s) and counts a new client as if it had (11 - 1) s of history, so in its first `s` seconds a
client may get up to (10 + s) * quota before throttling catches up. The checks produce as fast as
they can for a few seconds at a quota far below the client's speed (unthrottled, they send many times
the bound): over that bound means the quota was not enforced.
"""

from __future__ import annotations

import time
import uuid

from ..checks.common import Ctx

QUOTA_BYTES_PER_S = 128 * 1024
BATCH_BYTES = 16 * 1024  # the producers' batch size: a request's size, by which a broker may overshoot
WINDOWS_BEFORE_THROTTLE = 10  # Kafka's default quota.window.num - 1, times quota.window.size.seconds
FLAT_OUT_S = 3.0


def client_id(ctx: Ctx) -> str:
    """A client id of this check alone: quotas set for it throttle nothing else running meanwhile."""
    return f"compat-quota-{ctx.client}-{uuid.uuid4().hex[:8]}"


def most_bytes(seconds: float, quota: float = QUOTA_BYTES_PER_S) -> float:
    """The most a throttled client may have acknowledged after `seconds`: 10 % slack, and one
    request more (a request is recorded once handled, so the last one may overshoot)."""
    return (WINDOWS_BEFORE_THROTTLE + seconds) * quota * 1.1 + BATCH_BYTES


def set_quota(bootstrap: str, entity_client_id: str, key: str, value: float | None) -> None:
    """AlterClientQuotas with pykbroker's own wire client, for clients without a quota API; a value
    of None removes the key. Returns once DescribeClientQuotas shows the change (Kafka's broker
    learns it from the controller a moment after the alteration is acknowledged)."""
    from pykbroker.wire_client import WireClient

    client = WireClient(bootstrap)
    try:
        r = client.request(49, 1, {"entries": [{
            "entity": [{"entity_type": "client-id", "entity_name": entity_client_id}],
            "ops": [{"key": key, "value": value or 0.0, "remove": value is None}]}], "validate_only": False})
        code = r.entries[0].error_code
        if code:
            raise RuntimeError(f"AlterClientQuotas for client-id {entity_client_id}: error {code} "
                               f"{r.entries[0].error_message}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            d = client.request(48, 1, {"components": [{"entity_type": "client-id", "match_type": 0,
                                                      "match": entity_client_id}], "strict": True})
            values = {v.key: v.value for e in d.entries or [] for v in e["values"]}
            if values.get(key) == value:
                return
            time.sleep(0.1)
        raise RuntimeError(f"the quota of client-id {entity_client_id} was not described as {key}={value}")
    finally:
        client.close()


def produce_flat_out(bootstrap: str, topic: str, client: str, seconds: float,
                     batch_bytes: int = BATCH_BYTES) -> tuple[int, float, int]:
    """confluent-kafka producing 1000-byte values as fast as it can for `seconds`: (value bytes
    acknowledged, seconds taken, the largest throttle time the broker reported, in ms). Records
    still queued at the end are dropped."""
    import json

    from confluent_kafka import Producer

    throttles: list[int] = []
    acked = [0]

    def stats(text: str) -> None:
        throttles.extend(b["throttle"]["max"] for b in json.loads(text)["brokers"].values() if b["nodeid"] >= 0)

    def delivered(err, msg) -> None:  # type: ignore[no-untyped-def]
        if err is None:
            acked[0] += len(msg.value())
    producer = Producer({"bootstrap.servers": bootstrap, "client.id": client, "linger.ms": 5,
                         "batch.size": batch_bytes, "queue.buffering.max.kbytes": 2048,
                         "statistics.interval.ms": 500, "stats_cb": stats})
    producer.produce(topic, b"warm-up")
    producer.flush(10)
    acked[0] = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        try:
            producer.produce(topic, b"q" * 1000, callback=delivered)
        except BufferError:
            producer.poll(0.005)
        producer.poll(0)
    elapsed = time.monotonic() - start
    done = acked[0]
    producer.poll(0.6)  # one more statistics report
    producer.purge()
    producer.flush(1)
    return done, elapsed, max(throttles, default=0)


def fill(bootstrap: str, topic: str, megabytes: int) -> None:
    """About `megabytes` MB of 1000-byte values on partition 0, in 16 KiB batches (a throttled
    consumer's fetch returns whole batches, so small ones keep its rate even)."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": BATCH_BYTES})
    for _ in range(megabytes * 1000):
        try:
            producer.produce(topic, b"y" * 1000, partition=0)
        except BufferError:
            producer.flush(10)
            producer.produce(topic, b"y" * 1000, partition=0)
    producer.flush(30)


def consume_flat_out(bootstrap: str, topic: str, client: str, seconds: float) -> tuple[int, float]:
    """confluent-kafka reading partition 0 from the start as fast as it can for `seconds` after its
    first record: (value bytes received, seconds taken)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{client}-group", "client.id": client,
                         "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        first = consumer.poll(10)
        if first is None or first.error() is not None:
            raise RuntimeError(f"no first record from {topic}: {first and first.error()}")
        received, start = 0, time.monotonic()
        while time.monotonic() - start < seconds:
            msg = consumer.poll(0.1)
            if msg is not None and msg.error() is None:
                received += len(msg.value())
        return received, time.monotonic() - start
    finally:
        consumer.close()
