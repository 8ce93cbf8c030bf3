"""confluent-kafka (librdkafka)."""

from __future__ import annotations

import time
import uuid
import zlib

from .common import CheckSet, Ctx, Fail, Skip, expect, wait_until
from .scenarios import Driver, Rec, register

CLIENT = "confluent-kafka"
GROUP_JOIN_S = 25  # Tansu takes about 10 s to complete a join; pykbroker without groups: never

try:
    import confluent_kafka
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError as e:  # pragma: no cover - reported as SKIP
    confluent_kafka = None
    _IMPORT_ERROR = str(e)


def available() -> str | None:
    return None if confluent_kafka is not None else f"confluent-kafka not importable ({_IMPORT_ERROR})"


def version() -> str:
    if confluent_kafka is None:
        return ""
    return f"{confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]})"


def _result(future, ctx: Ctx, cap: float = 20):
    return future.result(timeout=ctx.remaining(cap))


class ConfluentDriver(Driver):
    name = CLIENT

    def _admin(self, ctx: Ctx) -> "AdminClient":
        return AdminClient({"bootstrap.servers": ctx.bootstrap, "client.id": "compat-confluent"})

    def create_topic(self, ctx, topic, partitions=1, configs=None):
        admin = self._admin(ctx)  # keep a reference: the futures fail if the admin is collected
        futures = admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=dict(configs or {}))],
            operation_timeout=ctx.remaining(10), request_timeout=ctx.remaining(15))
        _result(futures[topic], ctx)

    def delete_topics(self, ctx, topics):
        admin = self._admin(ctx)
        futures = admin.delete_topics(list(topics), operation_timeout=ctx.remaining(10),
                                      request_timeout=ctx.remaining(15))
        for f in futures.values():
            _result(f, ctx)

    def metadata(self, ctx):
        md = self._admin(ctx).list_topics(timeout=ctx.remaining(10))
        return set(md.topics), [(b.id, b.host, b.port) for b in md.brokers.values()]

    def partition_count(self, ctx, topic):
        from confluent_kafka import TopicCollection
        admin = self._admin(ctx)
        futures = admin.describe_topics(TopicCollection([topic]), request_timeout=ctx.remaining(10))
        return len(_result(futures[topic], ctx).partitions)

    def produce(self, ctx, topic, records, *, acks="all", compression="none", idempotent=False):
        conf = {"bootstrap.servers": ctx.bootstrap, "acks": str(acks), "linger.ms": 5,
                "compression.type": compression, "enable.idempotence": idempotent,
                "message.timeout.ms": int(ctx.remaining(30) * 1000), "client.id": "compat-confluent"}
        producer = Producer(conf)
        acked: list[tuple[int, int] | None] = [None] * len(records)
        errors: list[str] = []

        def on_delivery(index: int):
            def report(err, msg) -> None:
                if err is not None:
                    errors.append(f"record {index}: {err}")
                acked[index] = (msg.partition(), msg.offset())
            return report

        for i, r in enumerate(records):
            kwargs = {"value": r.value, "key": r.key, "on_delivery": on_delivery(i)}
            if r.partition is not None:
                kwargs["partition"] = r.partition
            if r.headers:
                kwargs["headers"] = r.headers
            if r.timestamp is not None:
                kwargs["timestamp"] = r.timestamp
            while True:
                try:
                    producer.produce(topic, **kwargs)
                    break
                except BufferError:
                    producer.poll(0.05)
        left = producer.flush(ctx.remaining(30))
        if left:
            raise Fail(f"{left} records still undelivered at the deadline")
        if errors:
            raise Fail(f"{len(errors)} deliveries failed, first: {errors[0]}")
        return [a if a is not None else (-1, -1) for a in acked]

    def _consumer(self, ctx: Ctx, group: str | None = None, **extra) -> "Consumer":
        conf = {"bootstrap.servers": ctx.bootstrap, "enable.auto.commit": False, "fetch.wait.max.ms": 100,
                "client.id": "compat-confluent", "auto.offset.reset": "earliest",
                # group.id is mandatory for a librdkafka consumer, even one that only assigns
                "group.id": group or f"compat-unused-{uuid.uuid4().hex[:8]}"}
        conf.update(extra)
        return Consumer(conf)

    def consume(self, ctx, topic, starts, count, *, read_committed=False):
        # explicit: librdkafka's default is read_committed
        consumer = self._consumer(ctx, **{"isolation.level": "read_committed" if read_committed else "read_uncommitted"})
        try:
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING if o is None else o)
                             for p, o in starts.items()])
            return _poll(ctx, consumer, count)
        finally:
            consumer.close()

    def transactional_produce(self, ctx, topic, transactional_id, transactions):
        producer = Producer({"bootstrap.servers": ctx.bootstrap, "transactional.id": transactional_id,
                             "linger.ms": 5, "client.id": "compat-confluent",
                             "message.timeout.ms": int(ctx.remaining(30) * 1000)})
        errors: list[str] = []

        def report(err, msg) -> None:
            if err is not None:
                errors.append(str(err))

        producer.init_transactions(ctx.remaining(30))
        for records, commit in transactions:
            producer.begin_transaction()
            for r in records:
                kwargs = {"value": r.value, "key": r.key, "on_delivery": report}
                if r.partition is not None:
                    kwargs["partition"] = r.partition
                producer.produce(topic, **kwargs)
            left = producer.flush(ctx.remaining(30))  # acked before the end: aborted records are in the log too
            if left or errors:
                raise Fail(f"transactional produce: {left} records not delivered, errors {errors[:3]}")
            if commit:
                producer.commit_transaction(ctx.remaining(30))
            else:
                producer.abort_transaction(ctx.remaining(30))

    def end_offsets(self, ctx, topic, partitions):
        consumer = self._consumer(ctx)
        try:
            return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=ctx.remaining(10))[1]
                    for p in partitions}
        finally:
            consumer.close()

    def offset_for_time(self, ctx, topic, partition, ts):
        consumer = self._consumer(ctx)
        try:
            [found] = consumer.offsets_for_times([TopicPartition(topic, partition, ts)], timeout=ctx.remaining(10))
            if found.error is not None:
                raise Fail(f"offsets_for_times: {found.error}")
            if found.offset < 0:
                return None
            # librdkafka returns only the offset: read that record for its timestamp.
            consumer.assign([TopicPartition(topic, partition, found.offset)])
            [rec] = _poll(ctx, consumer, 1)
            return found.offset, rec.timestamp
        finally:
            consumer.close()

    def partition_for_key(self, key, partitions):
        # librdkafka's default partitioner, consistent_random: CRC-32 of the key.
        return zlib.crc32(key) % partitions

    def group_consume(self, ctx, topic, group, count):
        consumer = self._consumer(ctx, group, **{"session.timeout.ms": 10000})
        try:
            consumer.subscribe([topic])
            got = _poll(ctx, consumer, count, first_within=GROUP_JOIN_S)
            last = got[-1]
            consumer.commit(offsets=[TopicPartition(topic, last.partition, last.offset + 1)], asynchronous=False)
            return got
        finally:
            consumer.close()

    def group_list_describe(self, ctx, topic, group):
        consumer = self._consumer(ctx, group, **{"session.timeout.ms": 10000})
        admin = self._admin(ctx)
        try:
            consumer.subscribe([topic])
            deadline = time.monotonic() + ctx.remaining(GROUP_JOIN_S)
            while not consumer.assignment() and time.monotonic() < deadline:
                consumer.poll(0.2)
            if not consumer.assignment():
                raise Fail(f"the member got no assignment within {GROUP_JOIN_S} s (no group coordinator found, "
                           "or the join did not complete)")
            listing = _result(admin.list_consumer_groups(request_timeout=ctx.remaining(10)), ctx)
            listed = any(g.group_id == group for g in listing.valid)
            desc = _result(admin.describe_consumer_groups([group], request_timeout=ctx.remaining(10))[group], ctx)
            return {"listed": listed, "state": getattr(desc.state, "name", desc.state), "members": len(desc.members)}
        finally:
            consumer.close()


def _poll(ctx: Ctx, consumer: "Consumer", count: int, first_within: float | None = None) -> list[Rec]:
    got: list[Rec] = []
    started = time.monotonic()
    while len(got) < count and not ctx.expired():
        if first_within is not None and not got and time.monotonic() - started > first_within:
            assigned = consumer.assignment()
            raise Fail(f"no record within {first_within} s of subscribing: " +
                       (f"assigned {[(tp.topic, tp.partition) for tp in assigned]}" if assigned
                        else "no partition assigned (the member never joined the group)"))
        for m in consumer.consume(num_messages=min(500, count - len(got)), timeout=0.2):
            if m.error():
                if m.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                    continue
                raise Fail(f"consume error: {m.error()}")
            got.append(Rec(value=m.value(), key=m.key(), headers=list(m.headers() or []),
                           timestamp=m.timestamp()[1], partition=m.partition(), offset=m.offset()))
    if len(got) < count:
        raise Fail(f"consumed {len(got)} of {count} records before the deadline")
    got.sort(key=lambda r: (r.partition, r.offset))
    return got


def cleanup(ctx: Ctx) -> None:
    if ctx.topics:
        ConfluentDriver().delete_topics(ctx, ctx.topics)


checks = CheckSet(CLIENT)
register(checks, ConfluentDriver())


# ---------------------------------------------------------------- admin APIs beyond topics, quotas

def _node_id(admin: "AdminClient", ctx: Ctx) -> int:
    return _result(admin.describe_cluster(request_timeout=ctx.remaining(10)), ctx).nodes[0].id


@checks.feature("admin-configs")
def admin_configs(ctx: Ctx) -> None:
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource

    topic = ctx.topic()
    ConfluentDriver().create_topic(ctx, topic, 1, {"retention.ms": "3600000"})
    admin = ConfluentDriver()._admin(ctx)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)

    def described() -> dict:
        return _result(admin.describe_configs([resource], request_timeout=ctx.remaining(10))[resource], ctx)
    configs = wait_until(ctx, described, f"{topic}'s configs")
    retention = configs["retention.ms"]
    expect(retention.value == "3600000" and retention.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
           f"retention.ms: {retention.value} from source {retention.source}")
    expect(configs["segment.bytes"].is_default, "segment.bytes is not reported as a default")
    change = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET)])
    _result(admin.incremental_alter_configs([change], request_timeout=ctx.remaining(10))[change], ctx)
    wait_until(ctx, lambda: described()["retention.ms"].value == "7200000", "the altered retention.ms")
    node = ConfigResource(ConfigResource.Type.BROKER, str(_node_id(admin, ctx)))
    broker = _result(admin.describe_configs([node], request_timeout=ctx.remaining(10))[node], ctx)
    expect("num.partitions" in broker, "the broker's configs lack num.partitions")


@checks.feature("admin-partitions")
def admin_partitions(ctx: Ctx) -> None:
    from confluent_kafka.admin import NewPartitions

    topic = ctx.topic()
    ConfluentDriver().create_topic(ctx, topic, 1)
    admin = ConfluentDriver()._admin(ctx)
    node = _node_id(admin, ctx)
    futures = admin.create_partitions([NewPartitions(topic, 3, replica_assignment=[[node], [node]])],
                                      request_timeout=ctx.remaining(15))
    _result(futures[topic], ctx)
    wait_until(ctx, lambda: ConfluentDriver().partition_count(ctx, topic) == 3, f"{topic} to have 3 partitions")
    try:
        _result(admin.create_partitions([NewPartitions(topic, 4, replica_assignment=[[999]])],
                                        request_timeout=ctx.remaining(15))[topic], ctx)
    except KafkaException as e:
        expect(e.args[0].name() == "INVALID_REPLICA_ASSIGNMENT", f"broker 999 refused with {e.args[0].name()}")
    else:
        raise Fail("a partition assigned to broker 999 was accepted")


@checks.feature("admin-replicas")
def admin_replicas(ctx: Ctx) -> None:
    from confluent_kafka import ElectionType

    topic = ctx.topic()
    ConfluentDriver().create_topic(ctx, topic, 1)
    admin = ConfluentDriver()._admin(ctx)
    tp = TopicPartition(topic, 0)
    elected = wait_until(ctx, lambda: _result(admin.elect_leaders(ElectionType.PREFERRED, [tp]), ctx),
                         "a preferred election answer")
    error = elected.get(tp)
    expect(error is not None and error.name() == "ELECTION_NOT_NEEDED", f"preferred election of {topic}-0: {error}")


@checks.feature("client-quotas")
def client_quotas(ctx: Ctx) -> None:
    """confluent-kafka has no quota API: the quota is set with pykbroker's wire client; the client
    under test is the throttled producer, which reports the broker's throttle times in its stats."""
    from .quotas import FLAT_OUT_S, QUOTA_BYTES_PER_S, client_id, most_bytes, produce_flat_out, set_quota

    topic = ctx.topic()
    ConfluentDriver().create_topic(ctx, topic, 1)
    cid = client_id(ctx)
    set_quota(ctx.bootstrap, cid, "producer_byte_rate", float(QUOTA_BYTES_PER_S))
    acked, elapsed, throttle = produce_flat_out(ctx.bootstrap, topic, cid, FLAT_OUT_S)
    bound = most_bytes(elapsed)
    ctx.note(f"{acked / 1024:.0f} KiB acknowledged in {elapsed:.1f} s at a {QUOTA_BYTES_PER_S // 1024} KiB/s quota "
             f"(bound {bound / 1024:.0f} KiB), largest throttle {throttle} ms")
    expect(acked <= bound, f"{acked} bytes acknowledged in {elapsed:.1f} s: over the quota's bound {bound:.0f}")
    expect(throttle > 0, "the client never reported a throttle time")
    set_quota(ctx.bootstrap, cid, "producer_byte_rate", None)


checks.not_supported("confluent-kafka's AdminClient has no log dir API (DescribeLogDirs, AlterReplicaLogDirs)",
                     "admin-log-dirs")
checks.not_supported("librdkafka does not implement fetch sessions (KIP-227 is 'Not supported' in its INTRODUCTION.md)",
                     "fetch-sessions")
