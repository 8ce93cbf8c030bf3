"""aiokafka against pykbroker (aiokafka still sends old Produce/Fetch/Metadata versions)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from conftest import COMPRESSIONS
from pykbroker.testing import RunningBroker


async def create(bs: str, name: str, partitions: int = 1, configs: dict[str, str] | None = None) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bs)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs or {})])
    finally:
        await admin.close()


async def consume(bs: str, tps: list[TopicPartition], expected: int, timeout_s: float = 30) -> list:
    consumer = AIOKafkaConsumer(bootstrap_servers=bs, enable_auto_commit=False, fetch_max_wait_ms=100,
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        got: list = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(got) < expected and loop.time() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                got.extend(records)
        return got
    finally:
        await consumer.stop()


def run(coro: object) -> object:
    return asyncio.run(asyncio.wait_for(coro, 90))  # type: ignore[arg-type]


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("acks", [1, "all"])
def test_round_trip(kafka_broker: RunningBroker, topic_name: str, compression: str, acks: object) -> None:
    bs = kafka_broker.bootstrap_servers

    async def scenario() -> None:
        await create(bs, topic_name)
        producer = AIOKafkaProducer(bootstrap_servers=bs, acks=acks,
                                    compression_type=None if compression == "none" else compression)
        await producer.start()
        try:
            futures = []
            for i in range(200):
                headers = [("h", b"x%d" % i)] if i % 3 == 0 else []
                value = None if i % 50 == 7 else b"value-%d" % i
                futures.append(await producer.send(topic_name, key=b"key-%d" % i, value=value, headers=headers,
                                                   timestamp_ms=1_700_000_000_000 + i, partition=0))
            metas = await asyncio.gather(*futures)
            assert sorted(m.offset for m in metas) == list(range(200))
        finally:
            await producer.stop()
        got = await consume(bs, [TopicPartition(topic_name, 0)], 200)
        assert [m.offset for m in got] == list(range(200))
        for i, m in enumerate(got):
            assert m.key == b"key-%d" % i
            assert m.value == (None if i % 50 == 7 else b"value-%d" % i)
            assert m.timestamp == 1_700_000_000_000 + i
            assert list(m.headers) == ([("h", b"x%d" % i)] if i % 3 == 0 else [])

    run(scenario())


def test_large_value_many_ordered_keyed_and_offsets(kafka_broker: RunningBroker, topic_name: str) -> None:
    bs = kafka_broker.bootstrap_servers

    async def scenario() -> None:
        await create(bs, topic_name, configs={"max.message.bytes": str(2 * 1024 * 1024)})
        await create(bs, topic_name + "-keyed", partitions=4)
        producer = AIOKafkaProducer(bootstrap_servers=bs, max_request_size=2 * 1024 * 1024, linger_ms=5,
                                    enable_idempotence=True)
        await producer.start()
        big = bytes(range(256)) * 4096
        base = 1_800_000_000_000
        try:
            await (await producer.send(topic_name, value=big, timestamp_ms=base))
            last = None
            for i in range(10_000):
                last = await producer.send(topic_name, value=b"%d" % i, timestamp_ms=base + 1 + i)
            await last
            chosen = {}
            for i in range(40):
                meta = await (await producer.send(topic_name + "-keyed", key=b"k%d" % i, value=b"v"))
                chosen[b"k%d" % i] = meta.partition
        finally:
            await producer.stop()
        got = await consume(bs, [TopicPartition(topic_name, 0)], 10_001, timeout_s=60)
        assert got[0].value == big
        assert [int(m.value) for m in got[1:]] == list(range(10_000))
        keyed = await consume(bs, [TopicPartition(topic_name + "-keyed", p) for p in range(4)], 40)
        assert {m.key: m.partition for m in keyed} == chosen and len(set(chosen.values())) > 1

        consumer = AIOKafkaConsumer(bootstrap_servers=bs, enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(topic_name, 0)
            found = await consumer.offsets_for_times({tp: base + 501})
            assert found[tp].offset == 501 and found[tp].timestamp == base + 501
            assert await consumer.end_offsets([tp]) == {tp: 10_001}
            consumer.assign([tp])
            consumer.seek(tp, 9_000)
            batch = await consumer.getmany(tp, timeout_ms=5000)
            assert batch[tp][0].offset == 9_000 and batch[tp][0].value == b"8999"
        finally:
            await consumer.stop()

    run(scenario())
