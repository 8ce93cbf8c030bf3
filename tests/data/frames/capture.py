"""Record real clients' request frames for the golden tests (tests/unit/test_golden_frames.py). A set-up
step run by hand when a client changes, never by the tests:

    python tests/data/frames/capture.py [CLIENT ...]      # default: every client below

Each client runs against a fresh in-process pykbroker behind the recording proxy (tests/tools/frame_proxy.py;
the broker advertises the proxy, so every connection passes through it): it creates or auto-creates the
topic "golden", produces three records, reads them back, and where the client has them joins consumer
groups (KIP-848 and classic) and makes admin calls. The first frame of every (api, version) it sends is
saved as tests/data/frames/<client>/<ApiName>_v<version>.bin (without the size prefix).

Needs: kafka-python, aiokafka, confluent-kafka (pip); java + tests/tools/setup_java_client_4x.sh (Java 4.4.0
client); go + tests/tools/setup_franz_go.sh (franz-go).
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT / "tests" / "tools"))

from frame_proxy import FrameProxy  # noqa: E402

from pykbroker.protocol.frame import peek_header  # noqa: E402
from pykbroker.protocol.messages import API_NAMES  # noqa: E402
from pykbroker.testing import running_broker  # noqa: E402

TOPIC = "golden"


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
    from confluent_kafka.admin import AdminClient, NewTopic
    common = {"bootstrap.servers": bootstrap, "client.id": "golden-librdkafka"}
    admin = AdminClient(common)
    admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(10)
    admin.list_topics(timeout=10)
    producer = Producer(common)
    for i in range(3):
        producer.produce(TOPIC, key=b"k%d" % i, value=b"v%d" % i, partition=0)
    producer.flush(10)
    consumer = Consumer({**common, "group.id": "unused"})
    consumer.assign([TopicPartition(TOPIC, 0, 0)])
    _consume(consumer, 3)
    consumer.close()
    for protocol in ("consumer", "classic"):  # KIP-848 (regex subscription) and the classic protocol
        group = Consumer({**common, "group.id": f"golden-{protocol}", "group.protocol": protocol,
                          "auto.offset.reset": "earliest", "enable.auto.commit": False})
        group.subscribe([f"^{TOPIC}.*"] if protocol == "consumer" else [TOPIC])
        _consume(group, 3, commit=True)
        group.close()


def _consume(consumer, want: int, commit: bool = False, timeout_s: float = 15) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    got = 0
    while got < want and time.monotonic() < deadline:
        for m in consumer.consume(10, 0.2):
            if not m.error():
                got += 1
                if commit:
                    consumer.commit(message=m, asynchronous=False)


def java(bootstrap: str) -> None:
    setup = subprocess.run([str(ROOT / "tests" / "tools" / "setup_java_client_4x.sh")], capture_output=True,
                           text=True, check=True)
    classpath = setup.stdout.strip().splitlines()[-1]
    prop = ["--prop", "client.id=golden-java-4.4"]

    def kafkacheck(*args: str) -> None:
        done = subprocess.run(["java", "-cp", classpath, "KafkaCheck", *args, "--bootstrap", bootstrap, *prop],
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"KafkaCheck {' '.join(args)}: {done.stdout[-1000:]} {done.stderr[-2000:]}")
    kafkacheck("admin", "create-topic", TOPIC, "--partitions", "2")
    for command in ("list-topics", "describe-cluster", "describe-features"):
        kafkacheck("admin", command)
    kafkacheck("admin", "describe-topic", TOPIC)
    kafkacheck("produce", "--topic", TOPIC, "--count", "3", "--value-size", "8")
    kafkacheck("consume", "--topic", TOPIC, "--count", "3")
    for protocol in ("consumer", "classic"):
        kafkacheck("consume", "--topic", TOPIC, "--count", "3", "--group", f"golden-{protocol}", "--from-beginning",
                   "--prop", f"group.protocol={protocol}")


def franz_go(bootstrap: str) -> None:
    built = subprocess.run(["bash", str(ROOT / "tests" / "tools" / "setup_franz_go.sh")], capture_output=True)
    if built.returncode != 0:
        raise RuntimeError(built.stdout.decode() + built.stderr.decode())
    binary = ROOT / ".tools" / "bin" / "franzcheck"

    def franzcheck(command: str, **params: object) -> None:
        params.update(bootstrap=bootstrap, timeout_ms=20000)
        done = subprocess.run([str(binary), command], input=json.dumps(params), capture_output=True, text=True,
                              timeout=60)
        if '"ok":true' not in done.stdout.replace(" ", ""):
            raise RuntimeError(f"franzcheck {command}: {done.stdout} {done.stderr[-500:]}")
    records = [{"key": base64.b64encode(b"k%d" % i).decode(), "value": base64.b64encode(b"v%d" % i).decode(),
                "headers": [], "partition": 0} for i in range(3)]
    franzcheck("create-topic", topic=TOPIC, partitions=1, configs={})
    franzcheck("produce", topic=TOPIC, records=records, acks="all", idempotent=True)
    franzcheck("consume", topic=TOPIC, count=3, starts={"0": None})
    franzcheck("end-offsets", topic=TOPIC)
    franzcheck("group-consume", topic=TOPIC, group="golden-classic", count=3)


CLIENTS: dict[str, Callable[[str], None]] = {
    "kafka-python": kafka_python, "aiokafka": aiokafka, "librdkafka": librdkafka, "java-4.4": java,
    "franz-go": franz_go,
}


def capture(client: str) -> dict[tuple[int, int], bytes]:
    captured: dict[tuple[int, int], bytes] = {}

    def record(frame: bytes) -> None:
        api_key, version, _ = peek_header(frame)
        captured.setdefault((api_key, version), frame)
    with FrameProxy(record) as proxy:
        settings = {"num.partitions": 1, "advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy.port}"}
        with running_broker(settings) as broker:
            proxy.upstream = ("127.0.0.1", broker.port)
            CLIENTS[client](f"127.0.0.1:{proxy.port}")
    return captured


def save(client: str, captured: dict[tuple[int, int], bytes]) -> None:
    out = HERE / client
    out.mkdir(exist_ok=True)
    for old in out.glob("*.bin"):
        old.unlink()
    for (api_key, version), frame in sorted(captured.items()):
        (out / f"{API_NAMES[api_key]}_v{version}.bin").write_bytes(frame)
    print(client, sum(map(len, captured.values())), "bytes:", ", ".join(f"{API_NAMES[k]} v{v}" for k, v in sorted(captured)))


def main() -> None:
    for client in sys.argv[1:] or CLIENTS:
        save(client, capture(client))


if __name__ == "__main__":
    main()
