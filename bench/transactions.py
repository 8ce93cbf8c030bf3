"""Transactions against plain produce, with confluent-kafka. Run by hand:

    python bench/transactions.py [--mib 64] [--value-size 1024] [--records-per-txn 1000] [--bootstrap HOST:PORT]

Starts pykbroker (`python -m pykbroker serve`) unless --bootstrap names a broker. Prints:
- produce MiB/s, plain idempotent vs transactional (same value size, batching and acks=all; one
  transaction per --records-per-txn records);
- commit latency p50/p99: commit_transaction() of small transactions (one record each);
- consume MiB/s of the transactional topic, read_uncommitted vs read_committed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

from broker import create, send, start_broker, stop_broker


def _producer(bootstrap: str, txn_id: str | None) -> Producer:
    conf = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "batch.size": 1 << 20,
            "queue.buffering.max.kbytes": 1 << 20, "enable.idempotence": True}
    if txn_id is not None:
        conf["transactional.id"] = txn_id
    p = Producer(conf)
    if txn_id is not None:
        p.init_transactions(30)
    return p


def produce_mib_s(bootstrap: str, topic: str, value: bytes, count: int, per_txn: int | None) -> float:
    p = _producer(bootstrap, None if per_txn is None else f"bench-{uuid.uuid4().hex[:8]}")
    started = time.perf_counter()
    if per_txn is None:
        for _ in range(count):
            send(p, topic, value)
        p.flush(300)
    else:
        for first in range(0, count, per_txn):
            p.begin_transaction()
            for _ in range(min(per_txn, count - first)):
                send(p, topic, value)
            p.commit_transaction(60)
    return count * len(value) / (1 << 20) / (time.perf_counter() - started)


def commit_latencies_ms(bootstrap: str, topic: str, n: int = 200) -> list[float]:
    p = _producer(bootstrap, f"bench-commit-{uuid.uuid4().hex[:8]}")
    out = []
    for i in range(n):
        p.begin_transaction()
        p.produce(topic, value=b"%d" % i, partition=0)
        started = time.perf_counter()
        p.commit_transaction(30)
        out.append((time.perf_counter() - started) * 1000)
    return out


def consume_mib_s(bootstrap: str, topic: str, isolation: str, count: int, value_size: int) -> float:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{isolation}", "enable.auto.commit": False,
                  "isolation.level": isolation, "fetch.max.bytes": 50 << 20, "max.partition.fetch.bytes": 10 << 20})
    c.assign([TopicPartition(topic, 0, 0)])
    got = 0
    started = time.perf_counter()
    while got < count and time.perf_counter() - started < 300:
        got += sum(1 for m in c.consume(num_messages=10000, timeout=1) if m.error() is None)
    elapsed = time.perf_counter() - started
    c.close()
    return got * value_size / (1 << 20) / elapsed


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--value-size", type=int, default=1024)
    parser.add_argument("--records-per-txn", type=int, default=1000)
    parser.add_argument("--bootstrap")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-txn-") as data:
        proc = None
        bootstrap = args.bootstrap
        if bootstrap is None:
            proc, bootstrap, _ = start_broker(data)
        try:
            value = os.urandom(args.value_size // 2).hex().encode()[:args.value_size]
            count = (args.mib << 20) // args.value_size
            plain, txn, small = (f"bench-{kind}-{uuid.uuid4().hex[:6]}" for kind in ("plain", "txn", "commit"))
            for topic in (plain, txn, small):
                create(bootstrap, topic)
            print(f"produce {args.mib} MiB of {args.value_size} B values, acks=all, idempotent")
            print(f"  plain          {produce_mib_s(bootstrap, plain, value, count, None):8.1f} MiB/s")
            print(f"  transactional  {produce_mib_s(bootstrap, txn, value, count, args.records_per_txn):8.1f} MiB/s"
                  f"  ({args.records_per_txn} records per transaction)")
            lat = commit_latencies_ms(bootstrap, small)
            print(f"commit latency (1-record transactions, n={len(lat)}): p50 {pct(lat, 50):.2f} ms, "
                  f"p99 {pct(lat, 99):.2f} ms")
            for isolation in ("read_uncommitted", "read_committed"):
                print(f"consume {isolation:17s} {consume_mib_s(bootstrap, txn, isolation, count, args.value_size):8.1f} MiB/s")
        finally:
            if proc is not None:
                stop_broker(proc)


if __name__ == "__main__":
    main()
