"""The Kafka 4.4.0 Java consumer with a KIP-848 broker-side regex (`consumer.subscribe(new
SubscriptionPattern(...))`, group.protocol=consumer): two members split the matching topics' partitions,
a topic created after they subscribed is picked up, and a later member resumes from their commits.

The members are KafkaCheck `pattern-consume` processes that commit after every poll; what they committed
is read over the wire (OffsetFetch) and the group's assignment with ConsumerGroupDescribe.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any, Callable

from confluent_kafka import Producer

from integration.clients.java import java_command
from pykbroker.testing import RunningBroker
from pykbroker.wire_client import WireClient
from test_groups_confluent import setup_topic, wait_for

OFFSET_FETCH, CONSUMER_GROUP_DESCRIBE = 9, 69


def committed(client: WireClient, group: str) -> dict[tuple[str, int], int]:
    r = client.request(OFFSET_FETCH, 9, {"groups": [{"group_id": group, "member_id": None, "member_epoch": -1,
                                                     "topics": None}], "require_stable": False})
    return {(t.name, p.partition_index): p.committed_offset for t in r.groups[0].topics for p in t.partitions}


def assignments(client: WireClient, group: str) -> list[set[tuple[str, int]]]:
    r = client.request(CONSUMER_GROUP_DESCRIBE, 1, {"group_ids": [group], "include_authorized_operations": False})
    return [{(t.topic_name, p) for t in m.assignment.topic_partitions for p in t.partitions}
            for m in r.groups[0].members]


def result(proc: subprocess.Popen, timeout_s: float = 30) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout_s)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, err[-2000:]
    r = json.loads(lines[-1])
    assert r["ok"], (r, err[-2000:])
    return r


def test_java4x_subscription_pattern_new_topic_split_and_resume(kafka_broker: RunningBroker, java4x: Callable,
                                                                 tmp_path: Path) -> None:
    bs = kafka_broker.bootstrap_servers
    prefix = f"rx{uuid.uuid4().hex[:6]}"
    first, later, other = f"{prefix}-a", f"{prefix}-b", f"x{prefix}-a"
    group = f"{prefix}-group"
    setup_topic(bs, first, partitions=4, count=40)
    setup_topic(bs, other, partitions=1, count=5)  # not matched: the regex must match the whole name
    stop = tmp_path / "stop"
    args = ["pattern-consume", "--bootstrap", bs, "--group", group, "--pattern", f"{prefix}-.*",
            "--stop-file", str(stop), "--timeout-ms", "90000"]
    classpath = java4x.keywords["classpath"]
    members = [subprocess.Popen(java_command(args, classpath), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, stdin=subprocess.DEVNULL) for _ in range(2)]
    client = WireClient(bs)
    try:
        wait_for(lambda: sum(v for (t, _), v in committed(client, group).items() if t == first) == 40
                 and [bool(a) for a in assignments(client, group)] == [True, True], timeout_s=60)
        setup_topic(bs, later, partitions=2, count=20)  # created after both subscribed
        wait_for(lambda: sum(v for (t, _), v in committed(client, group).items() if t == later) == 20, timeout_s=60)
        wait_for(lambda: len(set().union(*assignments(client, group))) == 6, timeout_s=30)
        owned = assignments(client, group)
        assert len(owned) == 2 and owned[0] and owned[1] and not owned[0] & owned[1]
        assert owned[0] | owned[1] == {(first, p) for p in range(4)} | {(later, p) for p in range(2)}
        stop.touch()
        results = [result(m) for m in members]
    finally:
        for m in members:
            if m.poll() is None:
                m.kill()
                m.communicate()
    assert all(r["stopped_by_file"] and r["count"] > 0 for r in results)
    seen: dict[str, int] = {}
    for r in results:
        for tp, span in r["partitions"].items():
            seen[tp] = seen.get(tp, 0) + span["count"]
    assert seen == {**{f"{first}:{p}": 10 for p in range(4)}, **{f"{later}:{p}": 10 for p in range(2)}}

    producer = Producer({"bootstrap.servers": bs})
    producer.produce(first, b"late-a", partition=0)
    producer.produce(later, b"late-b", partition=1)
    assert producer.flush(10) == 0
    resumed = java4x(["pattern-consume", "--bootstrap", bs, "--group", group, "--pattern", f"{prefix}-.*",
                      "--count", "2", "--timeout-ms", "40000"], timeout=60)
    client.close()
    assert resumed["partitions"] == {f"{first}:0": {"first": 10, "last": 10, "count": 1},
                                     f"{later}:1": {"first": 10, "last": 10, "count": 1}}  # only the new records
