"""kafka-python (pure Python client)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator, Sequence

from .common import UNKNOWN_TOPIC_OR_PARTITION, CheckSet, Ctx, Fail, NotYet, Skip, expect, wait_until
from .scenarios import Driver, Rec, register

CLIENT = "kafka-python"

try:
    import kafka
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.structs import OffsetAndMetadata
except ImportError as e:  # pragma: no cover - reported as SKIP
    kafka = None
    _IMPORT_ERROR = str(e)


def available() -> str | None:
    return None if kafka is not None else f"kafka-python not importable ({_IMPORT_ERROR}); pip install kafka-python"


def version() -> str:
    return getattr(kafka, "__version__", "?") if kafka is not None else ""


def _ms(ctx: Ctx, cap: float = 30) -> int:
    return int(ctx.remaining(cap) * 1000)


class KafkaPythonDriver(Driver):
    name = CLIENT

    def _admin(self, ctx: Ctx) -> "KafkaAdminClient":
        return KafkaAdminClient(bootstrap_servers=ctx.bootstrap, request_timeout_ms=_ms(ctx, 20),
                                client_id="compat-kafka-python")

    def create_topic(self, ctx, topic, partitions=1, configs=None):
        admin = self._admin(ctx)
        try:
            admin.create_topics({topic: {"num_partitions": partitions, "replication_factor": 1,
                                         "configs": dict(configs or {})}}, timeout_ms=_ms(ctx, 10))
        finally:
            admin.close()

    def delete_topics(self, ctx, topics):
        admin = self._admin(ctx)
        try:
            admin.delete_topics(list(topics), timeout_ms=_ms(ctx, 10))
        finally:
            admin.close()

    def metadata(self, ctx):
        admin = self._admin(ctx)
        try:
            topics = set(admin.list_topics())
            cluster = admin.describe_cluster()
        finally:
            admin.close()
        brokers = [(b.get("broker_id", b.get("node_id")), b["host"], b["port"]) for b in cluster["brokers"]]
        return topics, brokers

    def partition_count(self, ctx, topic):
        admin = self._admin(ctx)
        try:
            [desc] = admin.describe_topics([topic])
        finally:
            admin.close()
        if desc.get("error_code", 0) == UNKNOWN_TOPIC_OR_PARTITION:
            raise NotYet(f"describe {topic}: UNKNOWN_TOPIC_OR_PARTITION")  # not propagated yet: wait_until retries
        if desc.get("error_code", 0):
            raise Fail(f"describe {topic}: error code {desc['error_code']}")
        return len(desc["partitions"])

    def produce(self, ctx, topic, records, *, acks="all", compression="none", idempotent=False):
        producer = KafkaProducer(
            bootstrap_servers=ctx.bootstrap, acks=acks, linger_ms=5, batch_size=64 * 1024,
            compression_type=None if compression == "none" else compression,
            enable_idempotence=idempotent, max_request_size=2 * 1024 * 1024,
            request_timeout_ms=_ms(ctx, 20), max_block_ms=_ms(ctx, 20), client_id="compat-kafka-python")
        try:
            futures = [producer.send(topic, value=r.value, key=r.key, headers=r.headers or None,
                                     partition=r.partition, timestamp_ms=r.timestamp) for r in records]
            producer.flush(timeout=ctx.remaining(30))
            out = []
            for f in futures:
                md = f.get(timeout=ctx.remaining(5))
                out.append((md.partition, md.offset))
            return out
        finally:
            producer.close(timeout=2)

    def _consumer(self, ctx: Ctx, **extra) -> "KafkaConsumer":
        return KafkaConsumer(bootstrap_servers=ctx.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100,
                             request_timeout_ms=_ms(ctx, 30) + 1000, client_id="compat-kafka-python", **extra)

    def consume(self, ctx, topic, starts, count, *, read_committed=False):
        consumer = self._consumer(ctx, isolation_level="read_committed" if read_committed else "read_uncommitted")
        try:
            tps = {p: TopicPartition(topic, p) for p in starts}
            consumer.assign(list(tps.values()))
            for p, offset in starts.items():
                if offset is None:
                    consumer.seek_to_beginning(tps[p])
                else:
                    consumer.seek(tps[p], offset)
            return _poll(ctx, consumer, count)
        finally:
            consumer.close()

    def transactional_produce(self, ctx, topic, transactional_id, transactions):
        producer = KafkaProducer(bootstrap_servers=ctx.bootstrap, transactional_id=transactional_id,
                                 enable_idempotence=True, acks="all", linger_ms=5, request_timeout_ms=_ms(ctx, 20),
                                 max_block_ms=_ms(ctx, 30), client_id="compat-kafka-python")
        try:
            producer.init_transactions()
            for records, commit in transactions:
                producer.begin_transaction()
                futures = [producer.send(topic, value=r.value, key=r.key, partition=r.partition) for r in records]
                producer.flush(timeout=ctx.remaining(30))
                for f in futures:
                    f.get(timeout=ctx.remaining(5))  # acked before the end: aborted records are in the log too
                if commit:
                    producer.commit_transaction()
                else:
                    producer.abort_transaction()
        finally:
            producer.close(timeout=2)

    def end_offsets(self, ctx, topic, partitions):
        consumer = self._consumer(ctx)
        try:
            ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
            return {tp.partition: off for tp, off in ends.items()}
        finally:
            consumer.close()

    def offset_for_time(self, ctx, topic, partition, ts):
        consumer = self._consumer(ctx)
        try:
            tp = TopicPartition(topic, partition)
            found = consumer.offsets_for_times({tp: ts})[tp]
            return None if found is None else (found.offset, found.timestamp)
        finally:
            consumer.close()

    def partition_for_key(self, key, partitions):
        from kafka.partitioner.default import murmur2
        return (murmur2(key) & 0x7FFFFFFF) % partitions

    def codec_missing(self, codec):
        from kafka import codec as codecs
        probe = {"gzip": codecs.has_gzip, "snappy": codecs.has_snappy, "lz4": codecs.has_lz4,
                 "zstd": codecs.has_zstd}.get(codec)
        if probe is not None and not probe():
            return f"kafka-python has no {codec} library here"
        return None

    def group_consume(self, ctx, topic, group, count):
        consumer = self._consumer(ctx, group_id=group, auto_offset_reset="earliest",
                                  session_timeout_ms=10000, heartbeat_interval_ms=1000)
        try:
            consumer.subscribe([topic])
            got = _poll(ctx, consumer, count)
            if got:
                last = got[-1]
                consumer.commit({TopicPartition(topic, last.partition): OffsetAndMetadata(last.offset + 1, "", -1)})
            return got
        finally:
            consumer.close()

    def group_list_describe(self, ctx, topic, group):
        consumer = self._consumer(ctx, group_id=group, auto_offset_reset="earliest",
                                  session_timeout_ms=10000, heartbeat_interval_ms=1000)
        admin = self._admin(ctx)
        try:
            consumer.subscribe([topic])
            deadline = time.monotonic() + ctx.remaining(20)
            while not consumer.assignment() and time.monotonic() < deadline:
                consumer.poll(timeout_ms=200)
            if not consumer.assignment():
                raise Fail(f"the member got no assignment ({_group_state(consumer, topic)})")
            listed = any(_group_id(g) == group for g in admin.list_groups())
            described = admin.describe_groups([group])
            # kafka-python 3 answers {group_id: {...}}; older versions a list of group tuples
            desc = described[group] if isinstance(described, dict) else described[0]
            state = _field(desc, "group_state") or _field(desc, "state")
            return {"listed": listed, "state": state, "members": len(_field(desc, "members") or [])}
        finally:
            admin.close()
            consumer.close()


def _group_state(consumer: "KafkaConsumer", topic: str) -> str:
    """What the consumer knows, for a failure message (private attributes: best effort)."""
    try:
        coordinator = consumer._coordinator
        known = topic in consumer._client.cluster.topics()
        return (f"coordinator {coordinator.coordinator_id}, state {coordinator.state}, "
                f"generation {coordinator._generation}, topic in its metadata: {known}")
    except Exception as e:
        return f"state unknown: {type(e).__name__}"


def _group_id(g: object) -> str:
    if isinstance(g, dict):
        return g.get("group_id") or g.get("group") or ""
    if isinstance(g, (tuple, list)):
        return g[0]
    return getattr(g, "group", getattr(g, "group_id", ""))


def _field(obj: object, name: str) -> object:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _poll(ctx: Ctx, consumer: "KafkaConsumer", count: int) -> list[Rec]:
    got: list[Rec] = []
    while len(got) < count and not ctx.expired():
        for records in consumer.poll(timeout_ms=200).values():
            for m in records:
                got.append(Rec(value=m.value, key=m.key, headers=[(k, v) for k, v in (m.headers or [])],
                               timestamp=m.timestamp, partition=m.partition, offset=m.offset))
    if len(got) < count:
        raise Fail(f"consumed {len(got)} of {count} records before the deadline")
    got.sort(key=lambda r: (r.partition, r.offset))
    return got[:count]


def cleanup(ctx: Ctx) -> None:
    if ctx.topics:
        KafkaPythonDriver().delete_topics(ctx, ctx.topics)


checks = CheckSet(CLIENT)
register(checks, KafkaPythonDriver())


# ---------------------------------------------------------------- admin APIs beyond topics, quotas

@contextmanager
def _admin_for(ctx: Ctx, topic: str, configs: dict | None = None) -> Iterator["KafkaAdminClient"]:
    """A topic for the check, and an admin client closed afterwards."""
    KafkaPythonDriver().create_topic(ctx, topic, 1, configs)
    admin = KafkaPythonDriver()._admin(ctx)
    try:
        yield admin
    finally:
        admin.close()


def _node(admin: "KafkaAdminClient") -> int:
    return admin.describe_cluster()["brokers"][0]["broker_id"]


@checks.feature("fetch-sessions")
def fetch_sessions(ctx: Ctx) -> None:
    """kafka-python keeps a FetchSessionHandler per broker: after a full fetch opens a session
    (id != 0), each incremental fetch raises its epoch; a broker without sessions leaves the id 0."""
    topic = ctx.topic()
    driver = KafkaPythonDriver()
    driver.create_topic(ctx, topic, 20)
    driver.produce(ctx, topic, [Rec(value=b"v%d" % p, partition=p) for p in range(20)])
    consumer = driver._consumer(ctx)
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(20)])
        consumer.seek_to_beginning()
        _poll(ctx, consumer, 20)
        for i in range(3):  # new records on one partition: incremental fetches name only what moved
            driver.produce(ctx, topic, [Rec(value=b"more-%d" % i, partition=0)])
            _poll(ctx, consumer, 1)
        sessions = [h.next_metadata for h in consumer._fetcher._session_handlers.values()]
        expect(any(m.session_id != 0 and m.epoch >= 3 for m in sessions),
               f"no fetch session kept: {[(m.session_id, m.epoch) for m in sessions]} (session id, next epoch)")
    finally:
        consumer.close()


@checks.feature("admin-configs")
def admin_configs(ctx: Ctx) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType

    topic = ctx.topic()
    with _admin_for(ctx, topic, configs={"retention.ms": "3600000"}) as admin:
        def described() -> dict:
            r = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], include_synonyms=True,
                                       config_filter="all")
            return r[ConfigResourceType.TOPIC.name.lower()][topic] if isinstance(r, dict) else r[0]
        configs = wait_until(ctx, described, f"{topic}'s configs")
        retention = configs["retention.ms"]
        expect(retention["value"] == "3600000" and not retention.get("is_default", False),
               f"retention.ms described as {retention}")
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "7200000"})])
        wait_until(ctx, lambda: described()["retention.ms"]["value"] == "7200000", "the altered retention.ms")


@checks.feature("admin-partitions")
def admin_partitions(ctx: Ctx) -> None:
    from kafka.errors import InvalidReplicationAssignmentError

    topic = ctx.topic()
    with _admin_for(ctx, topic) as admin:
        node = _node(admin)
        admin.create_partitions({topic: {"count": 3, "assignments": [[node], [node]]}})
        wait_until(ctx, lambda: KafkaPythonDriver().partition_count(ctx, topic) == 3, f"{topic} to have 3 partitions")
        try:
            admin.create_partitions({topic: {"count": 4, "assignments": [[999]]}})
        except InvalidReplicationAssignmentError:
            pass
        else:
            raise Fail("a partition assigned to broker 999 was accepted")


@checks.feature("admin-log-dirs")
def admin_log_dirs(ctx: Ctx) -> None:
    from kafka.errors import LogDirNotFoundError, NoError

    topic = ctx.topic()
    with _admin_for(ctx, topic) as admin:
        node = _node(admin)

        def described() -> list:
            [broker] = admin.describe_log_dirs({topic: [0]})
            return [(d["log_dir"], [p for t in d["topics"] if t["name"] == topic for p in t["partitions"]])
                    for d in broker["log_dirs"]]
        dirs = wait_until(ctx, lambda: [d for d in described() if d[1]], f"{topic}-0 in a log dir")
        path = dirs[0][0]
        moved = admin.alter_replica_log_dirs({(topic, 0, node): path})
        expect(list(moved.values()) == [NoError], f"moving {topic}-0 to its own dir: {moved}")
        moved = admin.alter_replica_log_dirs({(topic, 0, node): "/nonexistent-compat-dir"})
        expect(list(moved.values()) == [LogDirNotFoundError], f"moving {topic}-0 to an unknown dir: {moved}")


@checks.feature("admin-replicas")
def admin_replicas(ctx: Ctx) -> None:
    topic = ctx.topic()
    with _admin_for(ctx, topic) as admin:
        node = _node(admin)
        elected = wait_until(ctx, lambda: admin.elect_leaders(0, {topic: [0]}), "a preferred election answer")
        codes = [p.error_code for r in elected.replica_election_results for p in r.partition_result]
        expect(codes == [84], f"preferred election of {topic}-0 answered {codes}, not ELECTION_NOT_NEEDED (84)")
        expect(admin.list_partition_reassignments() == {}, "a reassignment is in progress")
        moved = admin.alter_partition_reassignments({TopicPartition(topic, 0): [node]})
        expect(list(moved.values()) == [None], f"reassigning {topic}-0 to its own node: {moved}")


@checks.feature("client-quotas")
def client_quotas(ctx: Ctx) -> None:
    """kafka-python has no quota methods; its own AlterClientQuotas/DescribeClientQuotas request
    classes go through its admin client's connection manager. Then a kafka-python producer over the
    quota must be throttled."""
    from kafka.protocol.admin.client_quotas import AlterClientQuotasRequest, DescribeClientQuotasRequest

    from .quotas import BATCH_BYTES, FLAT_OUT_S, client_id, most_bytes

    # kafka-python sends only about 0.8 MiB/s unthrottled: a lower quota keeps its bound well below that
    QUOTA_BYTES_PER_S = 64 * 1024
    topic = ctx.topic()
    with _admin_for(ctx, topic) as admin:
        cid = client_id(ctx)
        Entry = AlterClientQuotasRequest.EntryData

        def alter(value: float | None) -> None:
            request = AlterClientQuotasRequest(validate_only=False, entries=[Entry(
                entity=[Entry.EntityData(entity_type="client-id", entity_name=cid)],
                ops=[Entry.OpData(key="producer_byte_rate", value=value or 0.0, remove=value is None)])])
            codes = [e.error_code for e in admin._manager.run(admin._manager.send, request).entries]
            expect(codes == [0], f"AlterClientQuotas answered {codes}")

        def described() -> dict:
            request = DescribeClientQuotasRequest(strict=True, components=[DescribeClientQuotasRequest.ComponentData(
                entity_type="client-id", match_type=0, match=cid)])
            response = admin._manager.run(admin._manager.send, request)
            return {v.key: v.value for e in response.entries or [] for v in e.values}
        alter(float(QUOTA_BYTES_PER_S))
        wait_until(ctx, lambda: described() == {"producer_byte_rate": float(QUOTA_BYTES_PER_S)}, "the quota described")
        producer = KafkaProducer(bootstrap_servers=ctx.bootstrap, client_id=cid, linger_ms=5, batch_size=BATCH_BYTES,
                                 max_block_ms=200)
        acked = [0]

        def delivered(_: object) -> None:
            acked[0] += 1000
        start = time.monotonic()
        while time.monotonic() - start < FLAT_OUT_S:
            try:
                producer.send(topic, b"q" * 1000).add_callback(delivered)
            except kafka.errors.KafkaTimeoutError:
                pass  # the buffer is full: the broker is holding the producer back
        elapsed = time.monotonic() - start
        throttle = max((v for group in producer.metrics().values() for k, v in group.items()
                        if k.endswith("throttle-time-max") and v == v), default=0)  # v == v: not NaN
        try:
            producer.close(timeout=1)  # records still queued are dropped: the check is over
        except kafka.errors.KafkaTimeoutError:
            pass
        bound = most_bytes(elapsed, QUOTA_BYTES_PER_S)
        ctx.note(f"{acked[0] / 1024:.0f} KiB acknowledged in {elapsed:.1f} s at a {QUOTA_BYTES_PER_S // 1024} KiB/s "
                 f"quota (bound {bound / 1024:.0f} KiB), largest throttle {throttle} ms")
        expect(acked[0] <= bound, f"{acked[0]} bytes acknowledged in {elapsed:.1f} s: over the bound {bound:.0f}")
        expect(throttle and throttle > 0, "the producer never reported a throttle time")
        alter(None)
        wait_until(ctx, lambda: described() == {}, "the quota removed")
