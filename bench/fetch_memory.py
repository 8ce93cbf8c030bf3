"""Broker memory while serving large fetches. Run by hand:

    python bench/fetch_memory.py [--mib 500] [--consumers 20] [--raw-clients 10] [--max-rss-gb 8]

Starts pykbroker (`python -m pykbroker serve`), produces --mib MiB of 1 KiB values to a one-partition
topic, then:

(a) --consumers confluent-kafka consumers, one process each, read the whole topic concurrently with
    fetch.max.bytes=100 MiB (max.partition.fetch.bytes as large): prints idle RSS, peak RSS (VmHWM,
    reset before the phase, and the highest sampled VmRSS), MiB consumed and MiB/s.
(b) --raw-clients sockets each send --raw-requests Fetch requests for 50 MiB and never read: prints
    broker RSS over --raw-seconds. A broker that builds whole responses in memory grows with every
    queued request; one that streams them stays flat (target: < 100 MB above idle).

Memory is why this exists: if the broker's RSS passes --max-rss-gb it is killed and the phase says so.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

from broker import cpu_seconds, create, produce, rss_mib, start_broker, status_mib, stop_broker

MIB = 1 << 20
FETCH_MAX_BYTES = 100 * MIB  # 104857600, the consumer setting under test
RAW_FETCH_BYTES = 50 * MIB


class RssWatch:
    """Samples a process's VmRSS every `interval_s` in a thread; kills it past `limit_mib`."""

    def __init__(self, pid: int, limit_mib: float, interval_s: float = 0.05) -> None:
        self.pid, self.limit_mib, self.interval_s = pid, limit_mib, interval_s
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MiB)
        self.killed = False
        self._stop = threading.Event()
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "RssWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> float:
        return max((m for _, m in self.samples), default=0.0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            mib = rss_mib(self.pid)
            self.samples.append((time.perf_counter() - self._started, mib))
            if mib > self.limit_mib and not self.killed:
                self.killed = True
                os.kill(self.pid, 9)
                print(f"  !! broker RSS {mib:.0f} MiB passed --max-rss-gb: killed it")


def reset_peak(pid: int) -> None:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs), so it measures one phase."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError as e:
        print(f"  (could not reset VmHWM: {e}; it includes the produce phase)")


def consume_all(bootstrap: str, topic: str, count: int, timeout_s: float, out: "multiprocessing.Queue[tuple]") -> None:
    """One consumer process: read partition 0 from offset 0 until `count` records; report bytes and seconds."""
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"mem-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False, "fetch.max.bytes": FETCH_MAX_BYTES,
                         "max.partition.fetch.bytes": FETCH_MAX_BYTES,
                         "receive.message.max.bytes": FETCH_MAX_BYTES + MIB})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = size = 0
    started = time.perf_counter()
    try:
        while got < count and time.perf_counter() - started < timeout_s:
            for m in consumer.consume(num_messages=10000, timeout=1):
                if m.error() is None:
                    got += 1
                    size += len(m)
    finally:
        consumer.close()
    out.put((got, size, time.perf_counter() - started))


def phase_consumers(proc_pid: int, bootstrap: str, topic: str, count: int, args: argparse.Namespace) -> None:
    print(f"(a) {args.consumers} confluent-kafka consumers, fetch.max.bytes={FETCH_MAX_BYTES}, "
          f"each reading {count} records")
    idle = rss_mib(proc_pid)
    reset_peak(proc_pid)
    ctx = multiprocessing.get_context("spawn")  # the parent has librdkafka threads: no fork
    out = ctx.Queue()
    workers = [ctx.Process(target=consume_all, args=(bootstrap, topic, count, args.timeout, out), daemon=True)
               for _ in range(args.consumers)]
    started, cpu0 = time.perf_counter(), cpu_seconds(proc_pid)
    with RssWatch(proc_pid, args.max_rss_gb * 1024) as watch:
        for w in workers:
            w.start()
        results = []
        for _ in workers:
            try:
                results.append(out.get(timeout=args.timeout + 30))
            except Exception:  # noqa: BLE001 - a worker died or hung: report what there is
                break
        elapsed = time.perf_counter() - started
        hwm = status_mib(proc_pid, "VmHWM")
        cpu = cpu_seconds(proc_pid) - cpu0
    for w in workers:
        w.join(5)
        if w.is_alive():
            w.kill()
    records = sum(r[0] for r in results)
    mib = sum(r[1] for r in results) / MIB
    complete = sum(1 for r in results if r[0] >= count)
    print(f"  broker idle RSS {idle:.0f} MiB, peak RSS {max(hwm, watch.peak):.0f} MiB (VmHWM {hwm:.0f}, "
          f"sampled max {watch.peak:.0f}), +{max(hwm, watch.peak) - idle:.0f} MiB over idle")
    print(f"  consumed {mib:.0f} MiB ({records} records) in {elapsed:.1f} s: {mib / elapsed:.1f} MiB/s total; "
          f"{complete}/{args.consumers} consumers read everything; broker CPU {cpu:.1f} s, {len(watch.samples)} RSS samples{'; BROKER KILLED' if watch.killed else ''}")


def fetch_frame(topic: str, correlation_id: int) -> bytes:
    from pykbroker.protocol.frame import encode_request
    return encode_request(1, 12, correlation_id, "fetch-memory", {
        "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": RAW_FETCH_BYTES, "isolation_level": 0,
        "topics": [{"topic": topic, "partitions": [
            {"partition": 0, "fetch_offset": 0, "partition_max_bytes": RAW_FETCH_BYTES}]}]})


def phase_raw(proc_pid: int, bootstrap: str, topic: str, args: argparse.Namespace) -> None:
    print(f"(b) {args.raw_clients} raw clients x {args.raw_requests} Fetch requests for "
          f"{RAW_FETCH_BYTES // MIB} MiB, never read")
    host, port = bootstrap.rsplit(":", 1)
    idle = rss_mib(proc_pid)
    socks: list[socket.socket] = []
    unsent = 0
    with RssWatch(proc_pid, args.max_rss_gb * 1024, interval_s=0.1) as watch:
        try:
            for _ in range(args.raw_clients):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)  # before connect: a small window
                s.connect((host, int(port)))
                s.settimeout(2)
                socks.append(s)
            for s in socks:
                for i in range(args.raw_requests):
                    try:
                        s.sendall(fetch_frame(topic, i + 1))
                    except (socket.timeout, OSError):  # the broker stopped reading: the rest stay unsent
                        unsent += args.raw_requests - i
                        break
            deadline = time.perf_counter() + args.raw_seconds
            next_print = time.perf_counter()
            while time.perf_counter() < deadline and not watch.killed:
                if time.perf_counter() >= next_print:
                    print(f"  t={watch.samples[-1][0] if watch.samples else 0:5.1f} s  RSS {rss_mib(proc_pid):7.0f} MiB")
                    next_print += 2
                time.sleep(0.1)
        finally:
            for s in socks:
                s.close()
        time.sleep(1)
        after = rss_mib(proc_pid)
    print(f"  idle {idle:.0f} MiB, peak {watch.peak:.0f} MiB (+{watch.peak - idle:.0f} MiB over idle; target < 100), "
          f"1 s after closing {after:.0f} MiB; {unsent} requests could not be sent"
          f"{'; BROKER KILLED' if watch.killed else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=500, help="MiB in the topic (1 KiB values)")
    parser.add_argument("--consumers", type=int, default=20, help="concurrent consumers in (a); 0 skips (a)")
    parser.add_argument("--raw-clients", type=int, default=10, help="never-reading clients in (b); 0 skips (b)")
    parser.add_argument("--raw-requests", type=int, default=50, help="Fetch requests each raw client sends")
    parser.add_argument("--raw-seconds", type=float, default=20, help="how long (b) watches the RSS")
    parser.add_argument("--max-rss-gb", type=float, default=8, help="kill the broker past this RSS")
    parser.add_argument("--timeout", type=float, default=600, help="seconds a consumer may take")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pykbroker-fetchmem-") as data:
        proc, bootstrap, _ = start_broker(data)
        try:
            print(f"broker RSS at start {rss_mib(proc.pid):.0f} MiB")
            topic = f"fetchmem-{uuid.uuid4().hex[:6]}"
            create(bootstrap, topic)
            elapsed, count = produce(bootstrap, topic, 1024, args.mib * MIB, "none")
            print(f"produced {args.mib} MiB ({count} x 1 KiB) in {elapsed:.1f} s; broker RSS {rss_mib(proc.pid):.0f} MiB")
            time.sleep(1)
            if args.consumers:
                phase_consumers(proc.pid, bootstrap, topic, count, args)
            if args.raw_clients and proc.poll() is None:
                time.sleep(2)  # let the broker settle after (a)
                phase_raw(proc.pid, bootstrap, topic, args)
        finally:
            stop_broker(proc)


if __name__ == "__main__":
    main()
