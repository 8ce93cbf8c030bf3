"""Consumer groups with kafka-python and aiokafka: members split a topic, commit, resume."""

from __future__ import annotations

import asyncio
import threading
import time

from aiokafka import AIOKafkaConsumer
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from pykbroker.testing import RunningBroker

FAST = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500}


def setup_topic(bs: str, topic: str, partitions: int, count: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bs)
    admin.create_topics([NewTopic(topic, partitions, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bs)
    for i in range(count):
        producer.send(topic, value=b"%d" % i, partition=i % partitions)
    producer.flush()
    producer.close()


def wait_for(predicate, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_kafka_python_members_split_then_resume(kafka_broker: RunningBroker, topic_name: str) -> None:
    bs = kafka_broker.bootstrap_servers
    setup_topic(bs, topic_name, 4, 400)
    consumers = [KafkaConsumer(topic_name, bootstrap_servers=bs, group_id="kp", auto_offset_reset="earliest",
                               enable_auto_commit=False, **FAST) for _ in range(2)]
    seen: list[list[bytes]] = [[], []]
    stop = threading.Event()

    def run(i: int) -> None:
        c = consumers[i]
        while not stop.is_set():
            for records in c.poll(timeout_ms=100).values():
                seen[i].extend(r.value for r in records)
            if c.assignment():
                try:
                    c.commit()
                except Exception:
                    pass  # mid-rebalance: retried on the next round

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    wait_for(lambda: all(len(c.assignment()) == 2 for c in consumers) and len(set(seen[0] + seen[1])) == 400)
    parts = [{tp.partition for tp in c.assignment()} for c in consumers]
    assert parts[0].isdisjoint(parts[1]) and parts[0] | parts[1] == {0, 1, 2, 3}
    stop.set()
    for t in threads:
        t.join(10)
    for c in consumers:
        c.commit()
        c.close()
    producer = KafkaProducer(bootstrap_servers=bs)
    for i in range(400, 420):
        producer.send(topic_name, value=b"%d" % i, partition=i % 4)
    producer.close()
    resumed = KafkaConsumer(topic_name, bootstrap_servers=bs, group_id="kp", auto_offset_reset="earliest",
                            enable_auto_commit=False, **FAST)
    got: list[bytes] = []
    deadline = time.monotonic() + 20
    while len(got) < 20 and time.monotonic() < deadline:
        for records in resumed.poll(timeout_ms=200).values():
            got.extend(r.value for r in records)
    resumed.close()
    assert sorted(got) == sorted(b"%d" % i for i in range(400, 420))  # only what was not committed


def test_aiokafka_members_split_then_resume(kafka_broker: RunningBroker, topic_name: str) -> None:
    bs = kafka_broker.bootstrap_servers
    setup_topic(bs, topic_name, 4, 200)

    async def scenario() -> None:
        consumers = [AIOKafkaConsumer(topic_name, bootstrap_servers=bs, group_id="aio", auto_offset_reset="earliest",
                                      enable_auto_commit=False, **FAST) for _ in range(2)]
        for c in consumers:
            await c.start()
        seen: set[bytes] = set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while (len(seen) < 200 or not all(len(c.assignment()) == 2 for c in consumers)) and loop.time() < deadline:
            for c in consumers:
                for records in (await c.getmany(timeout_ms=50)).values():
                    seen.update(r.value for r in records)
        parts = [{tp.partition for tp in c.assignment()} for c in consumers]
        assert len(seen) == 200
        assert parts[0].isdisjoint(parts[1]) and parts[0] | parts[1] == {0, 1, 2, 3}
        for c in consumers:
            await c.commit()
            await c.stop()
        resumed = AIOKafkaConsumer(topic_name, bootstrap_servers=bs, group_id="aio", auto_offset_reset="earliest",
                                   enable_auto_commit=False, **FAST)
        await resumed.start()
        batch = await resumed.getmany(timeout_ms=3000)
        await resumed.stop()
        assert sum(len(v) for v in batch.values()) == 0  # everything was committed

    asyncio.run(asyncio.wait_for(scenario(), 60))
