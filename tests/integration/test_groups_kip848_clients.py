"""The KIP-848 consumer group protocol with librdkafka (confluent-kafka, group.protocol=consumer):
joining, splitting partitions, commits and resume, and a broker-side regular-expression
subscription (ConsumerGroupHeartbeat v1) that picks up a topic created later, alone and with two
members splitting it. (The Java 4.4 consumer's SubscriptionPattern: clients/test_java_4x_pattern.py.)"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer

from pykbroker.protocol.errors import ErrorCode
from pykbroker.testing import RunningBroker
from pykbroker.wire_client import WireClient

from test_groups_confluent import setup_topic, wait_for


def kip848(bs: str, group: str) -> Consumer:
    return Consumer({"bootstrap.servers": bs, "group.id": group, "group.protocol": "consumer",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})


def drain(consumers: list[Consumer], want: int, timeout_s: float = 30) -> dict[int, list[tuple[str, int, int]]]:
    got: dict[int, list[tuple[str, int, int]]] = {i: [] for i in range(len(consumers))}
    deadline = time.monotonic() + timeout_s
    while sum(map(len, got.values())) < want and time.monotonic() < deadline:
        for i, c in enumerate(consumers):
            m = c.poll(0.05)
            if m is not None and not m.error():
                got[i].append((m.topic(), m.partition(), m.offset()))
                c.commit(message=m, asynchronous=False)
    return got


def resume_after_one_more(bs: str, group: str, subscription: list[str], topic: str, partition: int
                          ) -> list[tuple[str, int, int]]:
    """Produce one record to (topic, partition), then what a new member of `group` reads: only that
    record when the group's commits held."""
    p = Producer({"bootstrap.servers": bs})
    p.produce(topic, b"late", partition=partition)
    p.flush(10)
    again = kip848(bs, group)
    again.subscribe(subscription)
    resumed = drain([again], 1)
    again.close()
    return resumed[0]


def test_two_members_split_partitions_commit_and_resume(kafka_broker: RunningBroker, topic_name: str) -> None:
    bs = kafka_broker.bootstrap_servers
    setup_topic(bs, topic_name, partitions=4, count=200)
    members = [kip848(bs, "kip848-split") for _ in range(2)]
    for c in members:
        c.subscribe([topic_name])
    got = drain(members, 200)
    records = [r for i in range(2) for r in got[i]]
    assert len(records) == 200 and len(set(records)) == 200  # every record once (commits are synchronous)
    wait_for(lambda: all(c.poll(0.05) is None and c.assignment() for c in members))
    owned = [{tp.partition for tp in c.assignment()} for c in members]
    assert owned[0] and owned[1] and not owned[0] & owned[1] and owned[0] | owned[1] == {0, 1, 2, 3}
    for c in members:
        c.close()
    resumed = resume_after_one_more(bs, "kip848-split", [topic_name], topic_name, 0)
    assert resumed == [(topic_name, 0, 50)]  # only the new record: the commits held


def test_regex_subscription_picks_up_a_topic_created_later(kafka_broker: RunningBroker, topic_name: str) -> None:
    bs = kafka_broker.bootstrap_servers
    first, later = f"{topic_name}-rx-a", f"{topic_name}-rx-b"
    setup_topic(bs, first, partitions=2, count=20)
    setup_topic(bs, topic_name + "-other", partitions=1, count=5)  # not matched
    c = kip848(bs, "kip848-regex")
    c.subscribe([f"^{topic_name}-rx-.*"])  # librdkafka sends it as SubscribedTopicRegex
    got = drain([c], 20)[0]
    assert {t for t, _, _ in got} == {first} and len(got) == 20
    setup_topic(bs, later, partitions=1, count=7)
    more = drain([c], 7, timeout_s=30)[0]
    c.close()
    assert {t for t, _, _ in more} == {later} and len(more) == 7
    described = kafka_broker.broker.consumer_groups.describe("kip848-regex")
    assert described.error == ErrorCode.NONE


def test_regex_members_split_a_later_topic_and_resume_from_commits(kafka_broker: RunningBroker,
                                                                   topic_name: str) -> None:
    bs = kafka_broker.bootstrap_servers
    first, later = f"{topic_name}-rx-a", f"{topic_name}-rx-b"
    setup_topic(bs, first, partitions=2, count=20)
    members = [kip848(bs, "kip848-regex-split") for _ in range(2)]
    for c in members:
        c.subscribe([f"^{topic_name}-rx-.*"])
    got = drain(members, 20)
    setup_topic(bs, later, partitions=2, count=20)  # created after both subscribed
    more = drain(members, 20)
    records = [r for d in (got, more) for i in range(2) for r in d[i]]
    assert len(records) == 40 and len(set(records)) == 40  # every record once
    wait_for(lambda: all(c.poll(0.05) is None and c.assignment() for c in members)
             and len({(tp.topic, tp.partition) for c in members for tp in c.assignment()}) == 4)
    owned = [{(tp.topic, tp.partition) for tp in c.assignment()} for c in members]
    assert owned[0] and owned[1] and not owned[0] & owned[1]
    assert owned[0] | owned[1] == {(t, p) for t in (first, later) for p in range(2)}
    for c in members:
        c.close()
    resumed = resume_after_one_more(bs, "kip848-regex-split", [f"^{topic_name}-rx-.*"], later, 1)
    assert resumed == [(later, 1, 10)]  # only the new record: the regex members' commits held


def test_heartbeat_v1_rules(kafka_broker: RunningBroker) -> None:
    client = WireClient(kafka_broker.bootstrap_servers)
    try:
        def beat(member_id: str, regex: str | None, names: list[str] | None = None) -> object:
            deadline = time.monotonic() + 10
            while True:  # the coordinator may still be loading right after start
                r = client.request(68, 1, {"group_id": "v1-rules", "member_id": member_id, "member_epoch": 0,
                                           "instance_id": None, "rack_id": None, "rebalance_timeout_ms": 30000,
                                           "subscribed_topic_names": names, "subscribed_topic_regex": regex,
                                           "server_assignor": None, "topic_partitions": None})
                if r.error_code != ErrorCode.COORDINATOR_LOAD_IN_PROGRESS or time.monotonic() > deadline:
                    return r
                time.sleep(0.05)

        assert beat("", "x.*").error_code == ErrorCode.INVALID_REQUEST  # v1: the client picks its member id
        assert beat("m-1", "(unclosed").error_code == ErrorCode.INVALID_REGULAR_EXPRESSION
        assert beat("m-1", "(?=lookahead)").error_code == ErrorCode.INVALID_REGULAR_EXPRESSION  # not RE2/J
        assert beat("m-1", None, None).error_code == ErrorCode.INVALID_REQUEST
        ok = beat("m-1", "v1-.*")
        assert (ok.error_code, ok.member_id, ok.member_epoch) == (0, "m-1", 1)
        described = client.request(69, 1, {"group_ids": ["v1-rules"], "include_authorized_operations": False})
        assert described.groups[0].members[0].subscribed_topic_regex == "v1-.*"
    finally:
        client.close()
