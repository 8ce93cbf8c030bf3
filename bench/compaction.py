"""__consumer_offsets under the log cleaner: size and start-up time against the number of commits.
Run by hand:

    python bench/compaction.py [--commits 10000 100000] [--segment-bytes 1048576]

For each commit count, one group commits one partition's offset that many times (confluent-kafka,
asynchronous commits, at most 500 in flight), with the cleaner on and off. Printed per run: bytes appended to
__consumer_offsets (its log end offset tells how many records), its live size on disk once the
cleaner is done, and after a clean restart the time to the "ready" line and to the first
answered OffsetFetch (the group coordinator has replayed the topic by then: what start-up
costs a consumer). Kafka creates __consumer_offsets with offsets.topic.segment.bytes=100 MiB;
the bench sets 1 MiB so that 100,000 commits fill several segments (Kafka's cleaner, like this
one, never cleans the active segment).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from broker import start_broker, stop_broker

TOPIC = "bench-src"
GROUP = "bench-group"


def _consumer(bootstrap: str) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False})


def commit_many(bootstrap: str, n: int) -> float:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(10)
    c = _consumer(bootstrap)
    started = time.perf_counter()
    for i in range(n):
        # Asynchronous, but every 500th waits: requests on one connection are answered in order, so
        # no more than 500 are ever in flight (an unbounded flood only measures client timeouts).
        c.commit(offsets=[TopicPartition(TOPIC, 0, i)], asynchronous=i % 500 != 499)
    c.commit(offsets=[TopicPartition(TOPIC, 0, n)], asynchronous=False)
    elapsed = time.perf_counter() - started
    c.close()
    return elapsed


def live_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("*.log"))


def settle(directory: Path, timeout_s: float = 60) -> int:
    """The live size once it stops changing for 2 s (the cleaner has nothing more to do)."""
    last, stable_since = -1, time.monotonic()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        size = live_bytes(directory)
        if size != last:
            last, stable_since = size, time.monotonic()
        elif time.monotonic() - stable_since > 2:
            break
        time.sleep(0.2)
    return last


def time_to_committed(bootstrap: str, expected: int, started: float) -> float:
    c = _consumer(bootstrap)
    while True:
        got = c.committed([TopicPartition(TOPIC, 0)], timeout=10)
        if got and got[0].offset == expected:
            break
    c.close()
    return time.perf_counter() - started


def run(n: int, cleaner: bool, segment_bytes: int) -> dict[str, float]:
    settings = [f"offsets.topic.segment.bytes={segment_bytes}", "log.cleaner.backoff.ms=500",
                f"log.cleaner.enable={'true' if cleaner else 'false'}"]
    with tempfile.TemporaryDirectory(prefix="pykbroker-bench-") as data:
        proc, bootstrap, _ = start_broker(data, settings)
        try:
            commit_s = commit_many(bootstrap, n)
            offsets_dir = Path(data) / "__consumer_offsets-0"
            size = settle(offsets_dir)
        finally:
            stop_broker(proc)
        started = time.perf_counter()
        proc, bootstrap, ready_s = start_broker(data, settings)
        try:
            committed_s = time_to_committed(bootstrap, n, started)
        finally:
            stop_broker(proc)
    return {"commit_s": commit_s, "bytes": size, "ready_s": ready_s,
            "committed_s": committed_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--segment-bytes", type=int, default=1 << 20)
    args = parser.parse_args()
    print(f"{'commits':>8} {'cleaner':>7} {'commit s':>9} {'offsets log bytes':>18} {'ready s':>8} "
          f"{'OffsetFetch served s':>21}")
    for n in args.commits:
        for cleaner in (False, True):
            r = run(n, cleaner, args.segment_bytes)
            print(f"{n:>8} {'on' if cleaner else 'off':>7} {r['commit_s']:>9.1f} {int(r['bytes']):>18,} "
                  f"{r['ready_s']:>8.2f} {r['committed_s']:>21.2f}", flush=True)


if __name__ == "__main__":
    main()
