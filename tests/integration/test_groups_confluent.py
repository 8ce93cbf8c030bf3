"""Consumer groups with librdkafka: splitting work, rebalances, commits, static members, admin."""

from __future__ import annotations

import threading
import time
from collections import Counter

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pykbroker.testing import RunningBroker, running_broker


def setup_topic(bs: str, topic: str, partitions: int = 4, count: int = 400) -> None:
    admin = AdminClient({"bootstrap.servers": bs})
    for f in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result(10)
    producer = Producer({"bootstrap.servers": bs})
    for i in range(count):
        producer.produce(topic, value=b"%d" % i, partition=i % partitions)
    assert producer.flush(10) == 0


def consumer(bs: str, group: str, **extra: object) -> Consumer:
    return Consumer({"bootstrap.servers": bs, "group.id": group, "auto.offset.reset": "earliest",
                     "enable.auto.commit": False, "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
                     **extra})


class Worker(threading.Thread):
    """Consumes and commits each message synchronously, so committed work is exact."""

    def __init__(self, bs: str, group: str, topic: str, **extra: object) -> None:
        super().__init__(daemon=True)
        self.c = consumer(bs, group, **extra)
        self.c.subscribe([topic], on_assign=self._assigned)
        self.values: list[bytes] = []
        self.uncommitted: list[bytes] = []
        self.assignments: list[set[int]] = []
        self.stop_flag = threading.Event()

    def _assigned(self, c: Consumer, partitions: list[TopicPartition]) -> None:
        self.assignments.append({p.partition for p in partitions})

    def run(self) -> None:
        while not self.stop_flag.is_set():
            m = self.c.poll(0.05)
            if m is None or m.error():
                continue
            try:
                self.c.commit(message=m, asynchronous=False)
            except KafkaException:
                # Refused mid-rebalance (as Kafka does): handled but not committed; whoever owns
                # the partition next may see it again.
                self.uncommitted.append(m.value())
                continue
            self.values.append(m.value())
            time.sleep(0.002)  # slow enough that rebalances happen mid-stream
        self.c.close()


def wait_for(predicate, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_members_split_partitions_and_rebalance_without_loss_or_duplicates(
        kafka_broker: RunningBroker, topic_name: str) -> None:
    bs = kafka_broker.bootstrap_servers
    setup_topic(bs, topic_name, partitions=4, count=1200)
    a, b = Worker(bs, "split", topic_name), Worker(bs, "split", topic_name)
    a.start()
    b.start()
    wait_for(lambda: a.assignments and b.assignments and a.assignments[-1] and b.assignments[-1]
             and len(a.assignments[-1] | b.assignments[-1]) == 4)
    assert not a.assignments[-1] & b.assignments[-1]
    c = Worker(bs, "split", topic_name)
    c.start()
    wait_for(lambda: c.assignments and c.assignments[-1])
    a.stop_flag.set()
    a.join(10)
    every = {b"%d" % i for i in range(1200)}
    wait_for(lambda: set(a.values + b.values + c.values + a.uncommitted + b.uncommitted + c.uncommitted) == every,
             timeout_s=60)
    b.stop_flag.set()
    c.stop_flag.set()
    b.join(10)
    c.join(10)
    seen = Counter(a.values + b.values + c.values)
    # Each message was committed right after it was handled, so a rebalance never hands it out again.
    assert [v for v, n in seen.items() if n > 1] == []


def test_commit_close_resume_and_after_restart(tmp_path) -> None:
    data = tmp_path / "data"
    with running_broker(data_dir=data) as broker:
        bs = broker.bootstrap_servers
        setup_topic(bs, "resume", partitions=2, count=100)
        c = consumer(bs, "resumers")
        c.subscribe(["resume"])
        got = 0
        deadline = time.monotonic() + 20
        while got < 30 and time.monotonic() < deadline:
            m = c.poll(0.1)
            if m is not None and not m.error():
                got += 1
                c.commit(message=m, asynchronous=False)
        committed = {tp.partition: tp.offset for tp in c.committed([TopicPartition("resume", 0), TopicPartition("resume", 1)], timeout=10)}
        c.close()
        assert sum(max(o, 0) for o in committed.values()) == 30
        c2 = consumer(bs, "resumers")
        c2.subscribe(["resume"])
        firsts: dict[int, int] = {}
        deadline = time.monotonic() + 20
        while len(firsts) < 2 and time.monotonic() < deadline:
            m = c2.poll(0.1)
            if m is not None and not m.error():
                firsts.setdefault(m.partition(), m.offset())
        c2.close()
        assert firsts == {p: max(o, 0) for p, o in committed.items()}
    with running_broker(data_dir=data) as broker:
        c3 = consumer(broker.bootstrap_servers, "resumers")
        after = c3.committed([TopicPartition("resume", 0), TopicPartition("resume", 1)], timeout=10)
        c3.close()
        assert {tp.partition: tp.offset for tp in after} == committed


def test_cooperative_sticky_rebalance(kafka_broker: RunningBroker, topic_name: str) -> None:
    bs = kafka_broker.bootstrap_servers
    setup_topic(bs, topic_name, partitions=4, count=400)
    extra = {"partition.assignment.strategy": "cooperative-sticky"}
    a = Worker(bs, "coop", topic_name, **extra)
    a.start()
    wait_for(lambda: a.assignments and a.assignments[-1] == {0, 1, 2, 3})
    b = Worker(bs, "coop", topic_name, **extra)
    b.start()
    # Incremental: b gets some partitions, a keeps the rest without giving everything up first.
    wait_for(lambda: b.assignments and sum(len(x) for x in b.assignments) >= 2)
    wait_for(lambda: len(set(a.values + b.values + a.uncommitted + b.uncommitted)) >= 400, timeout_s=40)
    a.stop_flag.set()
    b.stop_flag.set()
    a.join(10)
    b.join(10)
    assert max(Counter(a.values + b.values).values()) == 1  # no message committed twice


def test_static_member_restart_gets_its_assignment_back_without_rebalance(
        kafka_broker: RunningBroker, topic_name: str) -> None:
    bs = kafka_broker.bootstrap_servers
    setup_topic(bs, topic_name, partitions=4, count=40)
    static = {"group.instance.id": "instance-a", "session.timeout.ms": 30000}
    a = Worker(bs, "static", topic_name, **static)
    b = Worker(bs, "static", topic_name, **{"group.instance.id": "instance-b", "session.timeout.ms": 30000})
    a.start()
    b.start()
    wait_for(lambda: a.assignments and b.assignments and len(a.assignments[-1] | b.assignments[-1]) == 4
             and not a.assignments[-1] & b.assignments[-1])
    group = kafka_broker.broker.groups.groups["static"]  # type: ignore[union-attr]
    generation = group.generation
    before = a.assignments[-1]
    a.stop_flag.set()
    a.join(10)  # a static member's close does not leave the group
    a2 = Worker(bs, "static", topic_name, **static)
    a2.start()
    wait_for(lambda: a2.assignments)
    assert a2.assignments[-1] == before
    assert group.generation == generation  # no rebalance happened
    a2.stop_flag.set()
    b.stop_flag.set()
    a2.join(10)
    b.join(10)


def test_silent_member_is_removed_after_its_session_timeout(kafka_broker: RunningBroker, topic_name: str) -> None:
    """A member that joins and then never heartbeats (here a raw client) loses its partitions."""
    from pykbroker.protocol.messages import codec
    from pykbroker.wire_client import WireClient

    bs = kafka_broker.bootstrap_servers
    setup_topic(bs, topic_name, partitions=2, count=10)
    a = Worker(bs, "expiry", topic_name)
    a.start()
    wait_for(lambda: a.assignments and a.assignments[-1] == {0, 1})
    subscription = b"\x00\x00" + bytes(codec("consumer_protocol_subscription", 0).encode({"topics": [topic_name]}))
    silent = WireClient(bs, timeout_s=30)
    join = {"group_id": "expiry", "session_timeout_ms": 6000, "rebalance_timeout_ms": 6000, "member_id": "",
            "protocol_type": "consumer", "protocols": [{"name": "range", "metadata": subscription}]}
    first = silent.request(11, 5, join)
    assert first.error_code == 79  # MEMBER_ID_REQUIRED
    joined = silent.request(11, 5, dict(join, member_id=first.member_id))
    assert joined.error_code == 0
    silent.request(14, 3, {"group_id": "expiry", "generation_id": joined.generation_id,
                           "member_id": joined.member_id, "assignments": []})
    wait_for(lambda: a.assignments[-1] != {0, 1})  # a shares the topic with the silent member ...
    started = time.monotonic()
    wait_for(lambda: a.assignments[-1] == {0, 1}, timeout_s=20)  # ... until its session expires
    assert time.monotonic() - started > 4
    silent.close()
    a.stop_flag.set()
    a.join(10)


def test_admin_lists_describes_and_deletes_groups(kafka_broker: RunningBroker, topic_name: str) -> None:
    bs = kafka_broker.bootstrap_servers
    setup_topic(bs, topic_name, partitions=2, count=20)
    w = Worker(bs, "admin-g", topic_name)
    w.start()
    wait_for(lambda: len(w.values) == 20)
    admin = AdminClient({"bootstrap.servers": bs})
    listed = admin.list_consumer_groups().result(10)
    assert "admin-g" in {g.group_id for g in listed.valid}
    desc = admin.describe_consumer_groups(["admin-g"])["admin-g"].result(10)
    assert str(desc.state).endswith("STABLE") and len(desc.members) == 1
    assert {tp.partition for tp in desc.members[0].assignment.topic_partitions} == {0, 1}
    offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions("admin-g")])["admin-g"].result(10)
    assert {tp.partition: tp.offset for tp in offsets.topic_partitions} == {0: 10, 1: 10}
    w.stop_flag.set()
    w.join(10)
    admin.delete_consumer_groups(["admin-g"])["admin-g"].result(10)
    assert "admin-g" not in {g.group_id for g in admin.list_consumer_groups().result(10).valid}
