"""Durability under SIGKILL: a child broker is killed at random moments during acks=all idempotent
produce and restarted on the same data dir and port. Every acknowledged record must then be at the
offset its delivery report gave, and no value may be stored twice (a retried batch that was written
before the kill must be recognised by the rebuilt producer state, not appended again).

The moments are drawn from a seeded RNG; the seed is printed (set PYKBROKER_CRASH_SEED to replay).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from pathlib import Path

import pytest
from child_broker import ChildBroker
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

KILLS = int(os.environ.get("PYKBROKER_CRASH_KILLS", 10))  # more for a longer soak
TOPIC = "crash"
RATE = 20000  # records/s offered at most: keeps the broker busy with produce requests at every kill
MAX_QUEUED = 5000  # records queued or in flight in the producer at most
ACKS_BEFORE_KILL = (200, 3000)  # a kill comes after this many (uniform) new acknowledgements since the restart...
KILL_DELAY_S = (0, 0.05)  # ...and this much later (uniform): while the producer is in full flow

QUIET = logging.getLogger("crash-test.rdkafka")  # librdkafka's "connection refused" at every kill: noise here
QUIET.setLevel(logging.CRITICAL)


def read_log(bootstrap: str, end: int) -> dict[int, bytes]:
    """offset -> value of every record of partition 0 below `end`."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "crash-check", "enable.auto.commit": False,
                         "fetch.max.bytes": 50 << 20, "max.partition.fetch.bytes": 10 << 20})
    consumer.assign([TopicPartition(TOPIC, 0, 0)])
    got: dict[int, bytes] = {}
    deadline = time.monotonic() + 30
    try:
        while len(got) < end and time.monotonic() < deadline:
            for m in consumer.consume(num_messages=10000, timeout=0.5):
                if m.error() is None:
                    got[m.offset()] = m.value()
                elif m.error().code() != KafkaError._PARTITION_EOF:
                    raise AssertionError(f"consume error: {m.error()}")
    finally:
        consumer.close()
    return got


def produce_through_kills(broker: ChildBroker, rng: random.Random) -> tuple[dict[int, int], int]:
    """Produce numbered values while a second thread SIGKILLs and restarts the broker KILLS times.

    Returns {sequence number: offset} of the acknowledged records and how many were sent."""
    acked: dict[int, int] = {}
    failed: list[str] = []

    def report(err, msg) -> None:  # noqa: ANN001 - confluent-kafka's callback signature
        if err is None:
            acked[int(msg.value())] = msg.offset()
        else:
            failed.append(str(err))

    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 5, "message.timeout.ms": 60000, "reconnect.backoff.ms": 20,
                         "reconnect.backoff.max.ms": 200, "retry.backoff.ms": 20, "retry.backoff.max.ms": 200,
                         "on_delivery": report, "logger": QUIET})
    done = threading.Event()
    errors: list[BaseException] = []
    in_flight: list[int] = []

    def killer() -> None:
        try:
            for _ in range(KILLS):
                target = len(acked) + rng.randint(*ACKS_BEFORE_KILL)
                deadline = time.monotonic() + 30
                while len(acked) < target:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"no progress after a restart: {len(acked)} of {target} acknowledged")
                    time.sleep(0.001)
                time.sleep(rng.uniform(*KILL_DELAY_S))
                in_flight.append(len(producer))  # queued or sent but unacknowledged at the kill
                broker.kill()
                time.sleep(rng.uniform(0, 0.2))  # down for a while: the producer retries into a closed port
                broker.start()
        except BaseException as e:  # reported by the producing thread
            errors.append(e)
        finally:
            done.set()

    thread = threading.Thread(target=killer, name="killer", daemon=True)
    thread.start()
    sent = 0
    started = time.monotonic()
    try:
        while not done.is_set():
            due = int((time.monotonic() - started) * RATE)
            while sent < due and len(producer) < MAX_QUEUED:
                producer.produce(TOPIC, value=b"%010d" % sent, partition=0)
                sent += 1
            producer.poll(0.005)
        left = producer.flush(60)
    finally:
        thread.join(30)
    print(f"unacknowledged records at each kill: {in_flight}")
    assert not errors, f"restart failed: {errors[0]!r}"
    assert left == 0, f"{left} records still unacknowledged 60 s after the last restart"
    assert not failed, f"delivery failed for {len(failed)} records, e.g. {failed[:3]}"
    return acked, sent


@pytest.mark.parametrize("settings", [[], ["log.flush.interval.messages=1"]], ids=["default-flush", "flush-every-message"])
def test_acknowledged_records_survive_sigkill(tmp_path: Path, settings: list[str]) -> None:
    seed = int(os.environ.get("PYKBROKER_CRASH_SEED", random.randrange(1 << 32)))
    print(f"crash test seed: {seed} (PYKBROKER_CRASH_SEED={seed} replays the kill moments)")
    rng = random.Random(seed)
    broker = ChildBroker(tmp_path / "data", settings)
    try:
        broker.start()
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for f in admin.create_topics([NewTopic(TOPIC, 1, 1)]).values():
            f.result(10)
        acked, sent = produce_through_kills(broker, rng)
        broker.kill()  # and once more after the last acknowledgement: nothing was shut down cleanly
        broker.start()
        end = TopicPartition(TOPIC, 0)
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "crash-end"})
        low, high = consumer.get_watermark_offsets(end, timeout=10)
        consumer.close()
        stored = read_log(broker.bootstrap, high)
    finally:
        broker.close()
    print(f"seed {seed}: {sent} sent, {len(acked)} acknowledged, log end {high}, {KILLS} kills")
    assert len(acked) == sent > RATE  # the run produced through the kills, and all of it was acknowledged
    assert len(stored) == high - low, f"fetched {len(stored)} of {high - low} records"
    wrong = {seq: (offset, stored.get(offset)) for seq, offset in acked.items()
             if stored.get(offset) != b"%010d" % seq}
    assert not wrong, f"{len(wrong)} acknowledged records not at their offset, e.g. {list(wrong.items())[:5]}"
    values = list(stored.values())
    assert len(set(values)) == len(values), f"{len(values) - len(set(values))} values stored twice"
