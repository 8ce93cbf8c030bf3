"""Rebalance edge cases with real clients: a leader that never syncs, commits during a rebalance,
session timeout limits (group.min.session.timeout.ms)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from kafka import KafkaConsumer
from test_groups_confluent import Worker, setup_topic, wait_for

from pykbroker.coordinator.group import GroupState
from pykbroker.protocol.errors import ErrorCode
from pykbroker.protocol.messages import codec
from pykbroker.testing import RunningBroker, running_broker
from pykbroker.wire_client import WireClient

JOIN, SYNC, HEARTBEAT = 11, 14, 12


def subscription(topic: str) -> bytes:
    return b"\x00\x00" + bytes(codec("consumer_protocol_subscription", 0).encode({"topics": [topic]}))


def test_a_leader_that_never_syncs_is_removed_and_the_other_member_gets_every_partition(topic_name: str) -> None:
    # Kafka's default initial delay (3 s), so the raw client and librdkafka land in one generation.
    with running_broker({"group.initial.rebalance.delay.ms": 3000}) as broker:
        bs = broker.bootstrap_servers
        setup_topic(bs, topic_name, partitions=2, count=10)
        raw = WireClient(bs, timeout_s=30)
        join = {"group_id": "stall", "session_timeout_ms": 30000, "rebalance_timeout_ms": 6000, "member_id": "",
                "protocol_type": "consumer", "protocols": [{"name": "range", "metadata": subscription(topic_name)}]}
        first = raw.request(JOIN, 5, join)
        assert first.error_code == ErrorCode.MEMBER_ID_REQUIRED
        raw.send(JOIN, 5, dict(join, member_id=first.member_id))  # parked: answered when the group forms
        worker = Worker(bs, "stall", topic_name, **{"max.poll.interval.ms": 6000})
        worker.start()
        _, joined = raw.receive(JOIN, 5)
        assert joined.error_code == 0 and joined.leader == joined.member_id  # the raw client leads ...
        assert len(joined.members) == 2
        started = time.monotonic()
        beats: list[int] = []
        stop = threading.Event()

        def heartbeat() -> None:  # ... keeps its session alive, and never sends SyncGroup
            while not stop.is_set():
                beats.append(raw.request(HEARTBEAT, 3, {"group_id": "stall", "generation_id": joined.generation_id,
                                                        "member_id": joined.member_id}).error_code)
                if beats[-1]:
                    return
                time.sleep(0.5)
        beater = threading.Thread(target=heartbeat, daemon=True)
        beater.start()
        wait_for(lambda: worker.assignments and worker.assignments[-1] == {0, 1}, timeout_s=30)
        waited = time.monotonic() - started
        assert 4 < waited < 20  # removed at the rebalance timeout (6 s), long before its session timeout (30 s)
        beater.join(10)
        assert beats[0] == ErrorCode.NONE and beats[-1] == ErrorCode.UNKNOWN_MEMBER_ID
        wait_for(lambda: len(worker.values) == 10)
        stop.set()
        raw.close()
        worker.stop_flag.set()
        worker.join(10)


def test_cooperative_members_commit_while_a_rebalance_is_pending(kafka_broker: RunningBroker,
                                                                 topic_name: str) -> None:
    bs = kafka_broker.bootstrap_servers
    setup_topic(bs, topic_name, partitions=4, count=2000)
    groups = kafka_broker.broker.groups  # type: ignore[union-attr]
    checks: list[tuple[GroupState | None, ErrorCode]] = []
    original = groups.commit_check

    def recording(group_id: str, *args: Any) -> ErrorCode:
        code = original(group_id, *args)
        checks.append((groups.state_of(group_id), code))
        return code
    groups.commit_check = recording  # type: ignore[method-assign]
    extra = {"partition.assignment.strategy": "cooperative-sticky"}
    a = Worker(bs, "coop-commit", topic_name, **extra)
    a.start()
    wait_for(lambda: a.assignments and a.assignments[-1] == {0, 1, 2, 3} and len(a.values) > 20)
    b = Worker(bs, "coop-commit", topic_name, **extra)
    b.start()
    wait_for(lambda: b.assignments and sum(len(x) for x in b.assignments) >= 2)
    wait_for(lambda: len(set(a.values + b.values + a.uncommitted + b.uncommitted)) == 2000, timeout_s=60)
    a.stop_flag.set()
    b.stop_flag.set()
    a.join(10)
    b.join(10)
    during = [code for state, code in checks if state == GroupState.PREPARING_REBALANCE]
    assert during, "no commit arrived while the rebalance was pending"
    assert set(during) == {ErrorCode.NONE}  # accepted, as Kafka accepts them
    assert max(Counter(a.values + b.values).values()) == 1


def test_session_timeouts_below_group_min_session_timeout_are_rejected(topic_name: str) -> None:
    join = {"group_id": "short", "session_timeout_ms": 1000, "rebalance_timeout_ms": 1000, "member_id": "",
            "protocol_type": "consumer", "protocols": [{"name": "range", "metadata": subscription(topic_name)}]}
    with running_broker() as broker:  # Kafka's default group.min.session.timeout.ms=6000
        raw = WireClient(broker.bootstrap_servers)
        assert raw.request(JOIN, 5, join).error_code == ErrorCode.INVALID_SESSION_TIMEOUT
        assert raw.request(JOIN, 5, dict(join, session_timeout_ms=1800001)).error_code == \
            ErrorCode.INVALID_SESSION_TIMEOUT
        raw.close()
    # What client test suites run with: a 1 s session timeout is then allowed and works.
    with running_broker({"group.min.session.timeout.ms": 1000}) as broker:
        bs = broker.bootstrap_servers
        setup_topic(bs, topic_name, partitions=2, count=20)
        consumer = KafkaConsumer(topic_name, bootstrap_servers=bs, group_id="short", auto_offset_reset="earliest",
                                 session_timeout_ms=1000, heartbeat_interval_ms=300, enable_auto_commit=False)
        got: list[bytes] = []
        deadline = time.monotonic() + 20
        while len(got) < 20 and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                got.extend(r.value for r in records)
        consumer.close()
        assert len(got) == 20
        group = broker.broker.groups.groups["short"]  # type: ignore[union-attr]
        assert group.generation >= 1
