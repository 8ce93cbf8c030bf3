"""pykbroker and Apache Kafka 4.4.0 side by side, the same cases in one run, alternating. Run by hand:

    python bench/vs_kafka.py [--mib 256] [--hold-mib 1024] [--kafka-heap 1g]

Starts pykbroker (`python -m pykbroker serve`) and Kafka (single-node KRaft through compat.reference,
jars from Maven Central; its JVM with Kafka's own defaults: G1, -Xmx/-Xms --kafka-heap, full JIT), each
with its own defaults otherwise (Kafka's group.initial.rebalance.delay.ms is 3000 ms, pykbroker's
200 ms). For each case, pykbroker then Kafka. Prints start-to-ready, idle RSS, produce MiB/s and broker
CPU ms per MiB (1 KiB values, acks=all, lz4 and none), consume MiB/s (confluent-kafka), end-to-end
p50/p99 latency at 1000 msg/s, time to a lone consumer's first group assignment, and RSS while
holding --hold-mib of data.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable

from confluent_kafka import Consumer

from broker import consume, cpu_seconds, create, latency, produce, rss_mib, start_broker, stop_broker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from compat.reference import kafka_reference  # noqa: E402


def first_assignment_s(bootstrap: str) -> float:
    """Subscribe a new group's only consumer; seconds until it is given its partitions."""
    topic = f"bench-group-{uuid.uuid4().hex[:6]}"
    create(bootstrap, topic)
    assigned: list[float] = []
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:6]}"})
    started = time.perf_counter()
    c.subscribe([topic], on_assign=lambda *_: assigned.append(time.perf_counter()))
    while not assigned and time.perf_counter() - started < 60:
        c.poll(0.05)
    c.close()
    return (assigned[0] - started) if assigned else float("nan")


class Target:
    def __init__(self, name: str, bootstrap: str, pid: int, ready_s: float, data: Path) -> None:
        self.name, self.bootstrap, self.pid, self.ready_s, self.data = name, bootstrap, pid, ready_s, data

    def held_mib(self) -> float:
        return sum(f.stat().st_size for f in self.data.rglob("*.log") if "cluster_metadata" not in str(f)) / (1 << 20)


def both(targets: list[Target], label: str, case: Callable[[Target], str]) -> None:
    for t in targets:
        print(f"{label:<34} {t.name:<10} {case(t)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=256, help="MiB produced per throughput case")
    parser.add_argument("--hold-mib", type=int, default=1024, help="MiB held when RSS is measured")
    parser.add_argument("--kafka-heap", default="1g", help="Kafka's -Xms/-Xmx (Kafka's scripts default to 1G)")
    args = parser.parse_args()
    jvm = (f"-Xms{args.kafka_heap}", f"-Xmx{args.kafka_heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true")
    with tempfile.TemporaryDirectory(prefix="bench-vs-") as data, \
            kafka_reference(overrides={"group.initial.rebalance.delay.ms": 3000}, jvm_opts=jvm) as kafka:
        proc, bootstrap, ready = start_broker(data)
        try:
            targets = [Target("pykbroker", bootstrap, proc.pid, ready, Path(data)),
                       Target("kafka", kafka.bootstrap_servers, kafka.pid, kafka.ready_after_s, kafka.work_dir)]
            time.sleep(2)
            both(targets, "start-to-ready", lambda t: f"{t.ready_s * 1000:8.0f} ms")
            both(targets, "idle RSS", lambda t: f"{rss_mib(t.pid):8.0f} MiB")
            for compression in ("none", "lz4"):
                counts: dict[str, tuple[str, int]] = {}

                def produce_case(t: Target) -> str:
                    topic = f"bench-{compression}-{uuid.uuid4().hex[:6]}"
                    create(t.bootstrap, topic)
                    cpu0 = cpu_seconds(t.pid)
                    elapsed, count = produce(t.bootstrap, topic, 1024, args.mib << 20, compression)
                    cpu = cpu_seconds(t.pid) - cpu0
                    mib = count * 1024 / (1 << 20)
                    counts[t.name] = (topic, count)
                    return f"{mib / elapsed:8.1f} MiB/s   broker CPU {cpu * 1000 / mib:6.2f} ms/MiB"

                both(targets, f"produce 1 KiB {compression}, acks=all", produce_case)

                def consume_case(t: Target) -> str:
                    topic, count = counts[t.name]
                    return f"{count * 1024 / (1 << 20) / consume(t.bootstrap, topic, count):8.1f} MiB/s"

                both(targets, f"consume 1 KiB {compression}", consume_case)

            for isolation in ("read_committed", "read_uncommitted"):
                def latency_case(t: Target) -> str:
                    topic = f"bench-latency-{uuid.uuid4().hex[:6]}"
                    create(t.bootstrap, topic)
                    samples = sorted(latency(t.bootstrap, topic, isolation=isolation))
                    p99 = samples[int(len(samples) * 0.99) - 1] * 1000
                    return f"p50 {statistics.median(samples) * 1000:6.2f} ms   p99 {p99:6.2f} ms"

                # librdkafka consumers default to read_committed; on Kafka 4.4 that adds ~150 ms
                # (a read_committed fetch waits for the last stable offset), read_uncommitted does not.
                both(targets, f"e2e latency 1000 msg/s {isolation}", latency_case)
            both(targets, "first group assignment", lambda t: f"{first_assignment_s(t.bootstrap) * 1000:8.0f} ms")

            def hold_case(t: Target) -> str:
                remaining = args.hold_mib - t.held_mib()
                if remaining > 0:
                    topic = f"bench-hold-{uuid.uuid4().hex[:6]}"
                    create(t.bootstrap, topic)
                    produce(t.bootstrap, topic, 1024, int(remaining) << 20, "none")
                return f"{rss_mib(t.pid):8.0f} MiB while holding {t.held_mib():.0f} MiB"

            both(targets, "RSS holding data", hold_case)
        finally:
            stop_broker(proc)


if __name__ == "__main__":
    main()
