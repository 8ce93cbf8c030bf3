"""Broker throughput, latency and footprint with confluent-kafka. Run by hand:

    python bench/broker.py [--mib 256] [--broker-cmd "..."]

Starts pykbroker as a subprocess (or any broker given by --bootstrap), then prints: start-to-ready
time, produce and consume MiB/s and msgs/s for 100 B and 1 KiB values (none and lz4, 1 partition,
acks=all, linger.ms=5, batch.size=1 MiB), end-to-end latency p50/p99 at 1000 msg/s, broker CPU
seconds per MiB produced, and broker RSS after holding the data. "consume" is confluent-kafka's
Python consumer (bound by its per-message work); "raw fetch" is Fetch requests over one socket
with pykbroker's codec, decoding only batch headers: the rate the broker serves.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Sequence

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid: int) -> float:
    return status_mib(pid, "VmRSS")


def status_mib(pid: int, field: str) -> float:
    """A memory figure of /proc/PID/status in MiB (VmRSS now, VmHWM the peak so far); 0 once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_broker(data_dir: str, settings: Sequence[str] = (), port: int | None = None,
                 timeout_s: float = 30) -> tuple[subprocess.Popen[bytes], str, float]:
    """Start `python -m pykbroker serve` as a user would; `settings` are KEY=VALUE for --set.

    Returns the process, its "host:port" and the start-to-ready time (the "ready" line on stdout)."""
    port = port or free_port()
    command = [sys.executable, "-m", "pykbroker", "serve", "--listen", f"127.0.0.1:{port}",
               "--data-dir", data_dir, "--log-level", "WARNING"]
    for item in settings:
        command += ["--set", item]
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    line = proc.stdout.readline() if ready else b""
    if b"ready" not in line:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"broker did not start within {timeout_s} s: {line!r}")
    return proc, f"127.0.0.1:{port}", time.perf_counter() - started


def stop_broker(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not ended within 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def create(bootstrap: str, topic: str, replication: int = 1, configs: dict[str, str] | None = None) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, 1, replication, config=configs or {})]).values():
        f.result(10)


def send(producer: Producer, topic: str, value: bytes) -> None:
    """producer.produce to partition 0, waiting (polling delivery reports) while its queue is full."""
    while True:
        try:
            producer.produce(topic, value=value, partition=0)
            return
        except BufferError:
            producer.poll(0.005)


def produce(bootstrap: str, topic: str, value_size: int, total_bytes: int, compression: str) -> tuple[float, int]:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "batch.size": 1 << 20,
                         "compression.type": compression, "queue.buffering.max.kbytes": 1 << 20,
                         "enable.idempotence": False})
    value = os.urandom(value_size // 2).hex().encode()[:value_size]
    count = total_bytes // value_size
    started = time.perf_counter()
    for _ in range(count):
        send(producer, topic, value)
    producer.flush(120)
    return time.perf_counter() - started, count


def consume(bootstrap: str, topic: str, count: int) -> float:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
                         "fetch.max.bytes": 50 << 20, "max.partition.fetch.bytes": 10 << 20})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = 0
    started = time.perf_counter()
    while got < count:
        msgs = consumer.consume(num_messages=10000, timeout=1)
        got += len(msgs)
        if not msgs and time.perf_counter() - started > 120:
            break
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


def raw_fetch(bootstrap: str, topic: str, count: int) -> float:
    """Fetch throughput without a client library's per-message work: what the broker serves."""
    from pykbroker.protocol.records import iter_batches
    from pykbroker.wire_client import WireClient
    client = WireClient(bootstrap)
    offset = 0
    started = time.perf_counter()
    while offset < count:
        r = client.request(1, 12, {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 50 << 20,
                                   "isolation_level": 0, "topics": [{"topic": topic, "partitions": [
                                       {"partition": 0, "fetch_offset": offset, "partition_max_bytes": 10 << 20}]}]})
        for _, h in iter_batches(r.responses[0].partitions[0].records):
            offset = h.last_offset + 1
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


def latency(bootstrap: str, topic: str, rate: int = 1000, seconds: float = 5,
            isolation: str = "read_committed") -> list[float]:
    """Send-to-receive times of records sent at `rate`/s; `isolation` is the consumer's isolation.level
    (librdkafka's default is read_committed)."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "lat", "fetch.wait.max.ms": 100,
                         "fetch.min.bytes": 1, "isolation.level": isolation})
    consumer.assign([TopicPartition(topic, 0, 0)])
    consumer.poll(0.5)
    samples: list[float] = []
    interval = 1 / rate
    next_send = time.perf_counter()
    end = next_send + seconds
    while time.perf_counter() < end:
        now = time.perf_counter()
        if now >= next_send:
            producer.produce(topic, value=repr(now).encode(), partition=0)
            producer.poll(0)
            next_send += interval
        # Block until the next send is due (poll returns at the first message): a busy loop here took
        # a whole core from the brokers on a 2-core machine (three of them in bench/cluster.py).
        m = consumer.poll(max(0.0, next_send - time.perf_counter()))
        for m in ([m] if m is not None else []) + consumer.consume(num_messages=100, timeout=0):
            if m.error() is None:
                samples.append(time.perf_counter() - float(m.value()))
    producer.flush(10)
    deadline = time.perf_counter() + 2
    while time.perf_counter() < deadline:
        for m in consumer.consume(num_messages=100, timeout=0.1):
            if m.error() is None:
                samples.append(time.perf_counter() - float(m.value()))
    consumer.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=256, help="MiB produced per throughput case")
    parser.add_argument("--hold-mib", type=int, default=1024, help="MiB held when RSS is measured")
    parser.add_argument("--bootstrap", default=None, help="measure an already running broker instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pykbroker-bench-") as data:
        proc = None
        if args.bootstrap:
            bootstrap, ready = args.bootstrap, float("nan")
        else:
            proc, bootstrap, ready = start_broker(data)
        try:
            print(f"start-to-ready: {ready * 1000:.0f} ms")
            total_mib = 0.0
            cpu_total = 0.0
            for value_size in (100, 1024):
                for compression in ("none", "lz4"):
                    topic = f"bench-{value_size}-{compression}-{uuid.uuid4().hex[:6]}"
                    create(bootstrap, topic)
                    cpu0 = cpu_seconds(proc.pid) if proc else 0.0
                    elapsed, count = produce(bootstrap, topic, value_size, args.mib << 20, compression)
                    cpu = (cpu_seconds(proc.pid) - cpu0) if proc else float("nan")
                    mib = count * value_size / (1 << 20)
                    total_mib += mib
                    cpu_total += cpu
                    c_elapsed = consume(bootstrap, topic, count)
                    f_elapsed = raw_fetch(bootstrap, topic, count)
                    print(f"{value_size:>5} B {compression:<4}  produce {mib / elapsed:7.1f} MiB/s {count / elapsed:9.0f} msg/s"
                          f"  | consume {mib / c_elapsed:7.1f} MiB/s {count / c_elapsed:9.0f} msg/s"
                          f"  | raw fetch {mib / f_elapsed:7.1f} MiB/s (uncompressed)"
                          f"  | broker CPU {cpu * 1000 / mib:5.2f} ms/MiB produced")
            topic = f"bench-latency-{uuid.uuid4().hex[:6]}"
            create(bootstrap, topic)
            samples = sorted(latency(bootstrap, topic))
            if samples:
                p50 = statistics.median(samples) * 1000
                p99 = samples[int(len(samples) * 0.99) - 1] * 1000
                print(f"end-to-end latency at 1000 msg/s: p50 {p50:.2f} ms, p99 {p99:.2f} ms ({len(samples)} samples)")
            if proc:
                def held_mib() -> float:
                    return sum(f.stat().st_size for f in Path(data).rglob("*.log")) / (1 << 20)
                remaining = args.hold_mib - held_mib()
                if remaining > 0:  # top up with uncompressed data until the logs hold --hold-mib
                    topic = f"bench-hold-{uuid.uuid4().hex[:6]}"
                    create(bootstrap, topic)
                    produce(bootstrap, topic, 1024, int(remaining) << 20, "none")
                print(f"broker RSS {rss_mib(proc.pid):.0f} MiB while holding {held_mib():.0f} MiB of data")
        finally:
            if proc:
                stop_broker(proc)


if __name__ == "__main__":
    main()
