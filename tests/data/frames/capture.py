"""Record real clients' request frames for the golden tests. Run by hand when a client changes:

    python tests/data/frames/capture.py

Each client creates (or auto-creates) topic "golden", produces three records and reads them
back against an in-process pykbroker; the first frame of every (api, version) it sends is saved
as tests/data/frames/<client>/<ApiName>_v<version>.bin (without the size prefix).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pykbroker.server.connection as connection
from pykbroker.protocol.frame import peek_header
from pykbroker.protocol.messages import API_NAMES
from pykbroker.testing import running_broker

HERE = Path(__file__).resolve().parent
TOPIC = "golden"
captured: dict[tuple[int, int], bytes] = {}
_decode = connection.decode_request


def recording_decode(frame):  # type: ignore[no-untyped-def]
    api_key, version, _ = peek_header(frame)
    captured.setdefault((api_key, version), bytes(frame))
    return _decode(frame)


def save(client: str) -> None:
    out = HERE / client
    out.mkdir(exist_ok=True)
    for old in out.glob("*.bin"):
        old.unlink()
    for (api_key, version), frame in sorted(captured.items()):
        (out / f"{API_NAMES[api_key]}_v{version}.bin").write_bytes(frame)
    print(client, sorted(f"{API_NAMES[k]} v{v}" for k, v in captured))
    captured.clear()


def kafka_python(bootstrap: str) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    producer = KafkaProducer(bootstrap_servers=bootstrap, client_id="golden-kafka-python")
    for i in range(3):
        producer.send(TOPIC, key=b"k%d" % i, value=b"v%d" % i, headers=[("h", b"1")]).get(10)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="golden-kafka-python", enable_auto_commit=False)
    consumer.assign([TopicPartition(TOPIC, 0)])
    consumer.seek_to_beginning()
    consumer.poll(2000)
    consumer.close()


def aiokafka(bootstrap: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id="golden-aiokafka")
        await producer.start()
        for i in range(3):
            await producer.send_and_wait(TOPIC, key=b"k%d" % i, value=b"v%d" % i)
        await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, client_id="golden-aiokafka", enable_auto_commit=False)
        await consumer.start()
        consumer.assign([TopicPartition(TOPIC, 0)])
        await consumer.seek_to_beginning()
        await consumer.getmany(timeout_ms=2000)
        await consumer.stop()
    asyncio.run(run())


def librdkafka(bootstrap: str) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition
    producer = Producer({"bootstrap.servers": bootstrap, "client.id": "golden-librdkafka"})
    for i in range(3):
        producer.produce(TOPIC, key=b"k%d" % i, value=b"v%d" % i, partition=0)
    producer.flush(10)
    consumer = Consumer({"bootstrap.servers": bootstrap, "client.id": "golden-librdkafka", "group.id": "unused"})
    consumer.assign([TopicPartition(TOPIC, 0, 0)])
    deadline = time.monotonic() + 5
    got = 0
    while got < 3 and time.monotonic() < deadline:
        got += len(consumer.consume(10, 0.2))
    consumer.close()


def main() -> None:
    connection.decode_request = recording_decode
    for name, run in (("kafka-python", kafka_python), ("aiokafka", aiokafka), ("librdkafka", librdkafka)):
        with running_broker({"num.partitions": 1}) as broker:
            run(broker.bootstrap_servers)
        save(name)


if __name__ == "__main__":
    main()
