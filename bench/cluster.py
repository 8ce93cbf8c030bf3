"""A 3-broker cluster on a local ZooKeeper: replication costs and failover. Run by hand:

    python bench/cluster.py [--mib 64] [--session-timeout-ms 2000]

Prints, for a 1-partition topic with replication factor 3 (min.insync.replicas=2) and one with
replication factor 1 on the same cluster: produce MiB/s and msgs/s (100 B values, acks=all,
linger.ms=5) and end-to-end latency p50/p99 at 1000 msg/s; then the failover time (leader SIGKILL
to the first acks=all acknowledgement of a record produced after the kill, at 1000 msg/s) and the
ISR catch-up rate (a follower SIGSTOPped while --mib MiB are produced, SIGCONT, until it is in
the ISR again). Failover is bounded below by zookeeper.session.timeout.ms (how long ZooKeeper
takes to notice a dead broker).
"""

from __future__ import annotations

import argparse
import signal
import statistics
import tempfile
import time
from pathlib import Path

from broker import create, latency, produce, start_broker, stop_broker
from confluent_kafka import Producer

from pykbroker.protocol.messages import API_KEYS
from pykbroker.tools.zookeeper import zookeeper_server
from pykbroker.wire_client import WireClient


def state(bootstrap: str, topic: str) -> tuple[int, list[int]]:
    client = WireClient(bootstrap)
    try:
        md = client.request(API_KEYS["METADATA"], 9, {"topics": [{"name": topic}], "allow_auto_topic_creation": False})
    finally:
        client.close()
    p = md.topics[0].partitions[0]
    return p.leader_id, sorted(p.isr_nodes)


def state_brokers(bootstrap: str) -> list[int]:
    client = WireClient(bootstrap)
    try:
        return [b.node_id for b in client.request(API_KEYS["METADATA"], 9, {"topics": []}).brokers]
    finally:
        client.close()


def wait_until(check, timeout_s: float = 120) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        try:
            if check():
                return time.perf_counter() - started
        except (OSError, ConnectionError):
            pass
        time.sleep(0.02)
    raise RuntimeError("timed out")


def failover(bootstraps: dict[int, str], procs: dict[int, object], topic: str) -> float:
    wait_until(lambda: state(bootstraps[1], topic)[0] >= 0)  # -1 until broker 1 sees the leader alive
    leader, _ = state(bootstraps[1], topic)
    acked: dict[int, float] = {}
    producer = Producer({"bootstrap.servers": ",".join(bootstraps.values()), "acks": "all", "linger.ms": 0,
                         "enable.idempotence": True, "retry.backoff.ms": 20, "topic.metadata.refresh.interval.ms": 500})

    def done(err: object, msg: object) -> None:
        if err is None:
            acked[int(msg.value())] = time.perf_counter()  # type: ignore[attr-defined]

    killed_at, first_after = 0.0, 0
    for i in range(6000):
        producer.produce(topic, str(i).encode(), partition=0, on_delivery=done)
        producer.poll(0)
        time.sleep(0.001)
        if i == 1000:
            procs[leader].send_signal(signal.SIGKILL)  # type: ignore[attr-defined]
            killed_at, first_after = time.perf_counter(), i + 1
    producer.flush(60)
    return min(t for v, t in acked.items() if v >= first_after) - killed_at


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=64, help="MiB produced per throughput case and for catch-up")
    parser.add_argument("--session-timeout-ms", type=int, default=2000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pykbroker-bench-cluster-"))
    with zookeeper_server(work / "zk") as zk:
        settings = [f"zookeeper.connect={zk.connect}/bench", f"zookeeper.session.timeout.ms={args.session_timeout_ms}",
                    "replica.lag.time.max.ms=2000", "min.insync.replicas=2"]
        procs, bootstraps = {}, {}
        try:
            for i in (1, 2, 3):
                procs[i], bootstraps[i], ready_s = start_broker(str(work / f"b{i}"), [*settings, f"broker.id={i}"])
                print(f"broker {i} ready in {ready_s:.2f} s")
            wait_until(lambda: all(len(state_brokers(b)) == 3 for b in bootstraps.values()))
            everyone = ",".join(bootstraps.values())
            for rf in (1, 3):
                topic = f"rf{rf}"
                create(everyone, topic, rf, {"min.insync.replicas": str(min(rf, 2))})
                elapsed, count = produce(everyone, topic, 100, args.mib << 20, "none")
                print(f"RF={rf} acks=all produce 100 B: {args.mib / elapsed:.1f} MiB/s, {count / elapsed:,.0f} msgs/s")
                create(everyone, topic + "-latency", rf, {"min.insync.replicas": str(min(rf, 2))})
                lat = sorted(latency(everyone, topic + "-latency"))
                print(f"RF={rf} e2e latency at 1000 msg/s: p50 {statistics.median(lat) * 1000:.1f} ms, "
                      f"p99 {lat[int(len(lat) * 0.99)] * 1000:.1f} ms")
            create(everyone, "catchup", 3)
            leader, _ = state(bootstraps[1], "catchup")
            follower = next(i for i in procs if i != leader)
            procs[follower].send_signal(signal.SIGSTOP)
            wait_until(lambda: follower not in state(bootstraps[leader], "catchup")[1])
            produce(bootstraps[leader], "catchup", 1000, args.mib << 20, "none")
            procs[follower].send_signal(signal.SIGCONT)
            took = wait_until(lambda: follower in state(bootstraps[leader], "catchup")[1])
            print(f"ISR catch-up: {args.mib} MiB behind, back in the ISR after {took:.2f} s ({args.mib / took:.1f} MiB/s)")
            create(everyone, "failover", 3)
            print(f"failover (zookeeper.session.timeout.ms={args.session_timeout_ms}): leader SIGKILL -> first "
                  f"acks=all ack of a later record after {failover(bootstraps, procs, 'failover'):.2f} s")
        finally:
            for p in procs.values():
                p.send_signal(signal.SIGCONT)
                stop_broker(p)


if __name__ == "__main__":
    main()
