"""Produce latency on one topic while another rolls (and fsyncs) 1 GiB segments. Run by hand:

    python bench/roll_latency.py [--seconds 10] [--b-mib 2200] [--b-segment-mib 1024] [--b-flush-messages N]

Starts pykbroker (`python -m pykbroker serve`). Topic A gets one acks=all record at a time at --rate
msg/s (confluent-kafka, linger.ms=0); a record's latency is send to delivery report. Prints A's
p50/p99/max: alone, then while a second process writes --b-mib MiB as fast as it can to topic B
(segment.bytes --b-segment-mib, so B rolls and the broker fsyncs the full segment each time; also
for the records sent from 0.5 s before to 1 s after a roll was seen on disk), and,
with --b-flush-messages, while B is written with that flush.messages. A broker that fsyncs on its
event loop stalls every connection for the length of the fsync. Target: A's p99 < 10 ms.
On a small machine an unpaced B also competes with A for CPU: --b-mib-per-s separates that from the rolls,
and --b-value-bytes 65536 takes most of B's own Python loop (100k produce() calls a second at 1 KiB) away.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from broker import send, start_broker, stop_broker

MIB = 1 << 20


def create(bootstrap: str, topic: str, config: dict[str, str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, 1, 1, config=config)]).values():
        f.result(10)


def measure(bootstrap: str, topic: str, rate: int, seconds: float,
            stop: "multiprocessing.synchronize.Event | None" = None) -> list[tuple[float, float]]:
    """(send time, latency) in s of single acks=all records sent at `rate`/s for `seconds` (or until `stop`)."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                         "enable.idempotence": False, "max.in.flight": 5})
    samples: list[tuple[float, float]] = []

    def report(err, msg, sent: float) -> None:  # noqa: ANN001 - confluent-kafka's callback signature
        if err is None:
            samples.append((sent, time.perf_counter() - sent))

    producer.produce(topic, value=b"warm-up", partition=0)  # metadata and connection outside the figures
    producer.flush(10)
    interval = 1 / rate
    next_send = time.perf_counter()
    end = next_send + seconds
    value = b"x" * 100
    while time.perf_counter() < end and not (stop is not None and stop.is_set()):
        now = time.perf_counter()
        if now >= next_send:
            producer.produce(topic, value=value, partition=0,
                             on_delivery=lambda err, msg, sent=now: report(err, msg, sent))
            next_send += interval
        producer.poll(max(0.0, next_send - time.perf_counter()))
    producer.flush(30)
    return samples


def load(bootstrap: str, topic: str, mib: int, mib_per_s: float, value_bytes: int,
         started: "multiprocessing.synchronize.Event", done: "multiprocessing.synchronize.Event",
         out: "multiprocessing.Queue[float]") -> None:
    """Child process: write `mib` MiB of `value_bytes` values to `topic` (paced at `mib_per_s`)."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "batch.size": MIB,
                         "queue.buffering.max.kbytes": 1 << 19, "enable.idempotence": False})
    value = b"b" * value_bytes
    count = mib * MIB // len(value)
    per_mib = max(1, MIB // value_bytes)
    begun = time.perf_counter()
    started.set()
    for i in range(count):
        if mib_per_s and i % per_mib == 0:  # pace: 1 MiB per step
            ahead = i / per_mib / mib_per_s - (time.perf_counter() - begun)
            if ahead > 0:
                time.sleep(ahead)  # not poll(ahead): that returns at the first delivery report
            producer.poll(0)
        send(producer, topic, value)
    producer.flush(600)
    out.put(time.perf_counter() - begun)
    done.set()


class RollWatch:
    """Notes when a partition directory gets a new segment file (polled every 5 ms in a thread)."""

    def __init__(self, directory: Path) -> None:
        self.directory, self.rolls = directory, []  # perf_counter times
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "RollWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        seen = 1
        while not self._stop.wait(0.005):
            n = len(list(self.directory.glob("*.log")))
            if n > seen:
                self.rolls.extend([time.perf_counter()] * (n - seen))
                seen = n


def near(samples: list[tuple[float, float]], rolls: list[float], window: tuple[float, float] = (-0.5, 1.0)) -> list[float]:
    """Latencies of records sent from window[0] to window[1] s around a roll (the new file's appearance)."""
    return [lat for sent, lat in samples if any(window[0] <= sent - r <= window[1] for r in rolls)]


def summary(samples: list[tuple[float, float]] | list[float]) -> str:
    if not samples:
        return "no samples"
    ms = sorted((s[1] if isinstance(s, tuple) else s) * 1000 for s in samples)
    p99 = ms[max(0, int(len(ms) * 0.99) - 1)]
    over = sum(1 for s in ms if s > 10)
    return (f"p50 {statistics.median(ms):6.2f} ms  p99 {p99:7.2f} ms  max {ms[-1]:8.2f} ms  "
            f"({len(ms)} records, {over} over 10 ms)")


def with_load(bootstrap: str, data: str, args: argparse.Namespace, b_config: dict[str, str], label: str) -> None:
    a_topic, b_topic = f"a-{uuid.uuid4().hex[:6]}", f"b-{uuid.uuid4().hex[:6]}"
    create(bootstrap, a_topic, {})
    create(bootstrap, b_topic, b_config)
    ctx = multiprocessing.get_context("spawn")  # the parent has librdkafka threads: no fork
    started, done, out = ctx.Event(), ctx.Event(), ctx.Queue()
    child = ctx.Process(target=load, args=(bootstrap, b_topic, args.b_mib, args.b_mib_per_s, args.b_value_bytes, started, done, out),
                        daemon=True)
    child.start()
    try:
        started.wait(60)
        with RollWatch(Path(data) / f"{b_topic}-0") as rolls:
            samples = measure(bootstrap, a_topic, args.rate, args.b_timeout, stop=done)
        elapsed = out.get(timeout=args.b_timeout)
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
    close = near(samples, rolls.rolls)
    print(f"A {label:<34} {summary(samples)}")
    print(f"  of which sent -0.5..+1 s around a roll      {summary(close)}")
    print(f"  B: {args.b_mib} MiB in {elapsed:.1f} s ({args.b_mib / elapsed:.0f} MiB/s), {len(rolls.rolls)} segment rolls")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="records/s on topic A")
    parser.add_argument("--seconds", type=float, default=10, help="how long A is measured alone")
    parser.add_argument("--b-mib", type=int, default=2200, help="MiB written to B (A is measured meanwhile)")
    parser.add_argument("--b-mib-per-s", type=float, default=0, help="pace B (0: as fast as it goes)")
    parser.add_argument("--b-value-bytes", type=int, default=1024,
                        help="B's value size (larger values: less of the load generator's own CPU)")
    parser.add_argument("--b-segment-mib", type=int, default=1024, help="B's segment.bytes in MiB")
    parser.add_argument("--b-flush-messages", type=int, default=0, help="also run with B's flush.messages=N")
    parser.add_argument("--b-timeout", type=float, default=600, help="give up on B after this long")
    args = parser.parse_args()
    segment = str(args.b_segment_mib * MIB)
    with tempfile.TemporaryDirectory(prefix="pykbroker-roll-") as data:
        proc, bootstrap, _ = start_broker(data)
        try:
            a_topic = f"a-{uuid.uuid4().hex[:6]}"
            create(bootstrap, a_topic, {})
            print(f"A {'alone':<34} {summary(measure(bootstrap, a_topic, args.rate, args.seconds))}")
            with_load(bootstrap, data, args, {"segment.bytes": segment},
                      f"with B rolling {args.b_segment_mib} MiB segments")
            if args.b_flush_messages:
                with_load(bootstrap, data, args, {"segment.bytes": segment,
                                                  "flush.messages": str(args.b_flush_messages)},
                          f"with B and flush.messages={args.b_flush_messages}")
        finally:
            stop_broker(proc)


if __name__ == "__main__":
    main()
