"""aiokafka (asyncio client); every step runs in its own event loop, bounded by the check's deadline."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from .common import UNKNOWN_TOPIC_OR_PARTITION, CheckSet, Ctx, Fail, NotYet, expect, wait_until
from .scenarios import Driver, Rec, register

CLIENT = "aiokafka"

try:
    import aiokafka
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
except ImportError as e:  # pragma: no cover - reported as SKIP
    aiokafka = None
    _IMPORT_ERROR = str(e)


def available() -> str | None:
    return None if aiokafka is not None else f"aiokafka not importable ({_IMPORT_ERROR})"


def version() -> str:
    return getattr(aiokafka, "__version__", "?") if aiokafka is not None else ""


def _run(ctx: Ctx, coro: Awaitable[Any]) -> Any:
    async def bounded() -> Any:
        try:
            return await asyncio.wait_for(coro, ctx.remaining())
        except asyncio.TimeoutError:
            raise Fail("timed out (aiokafka call did not finish before the deadline)") from None
    return asyncio.run(bounded())


def _ms(ctx: Ctx, cap: float = 30) -> int:
    return int(ctx.remaining(cap) * 1000)


class AiokafkaDriver(Driver):
    name = CLIENT

    def _with_admin(self, ctx: Ctx, use: Callable[["AIOKafkaAdminClient"], Awaitable[Any]]) -> Any:
        async def go() -> Any:
            admin = AIOKafkaAdminClient(bootstrap_servers=ctx.bootstrap, request_timeout_ms=_ms(ctx, 20),
                                        client_id="compat-aiokafka")
            await admin.start()
            try:
                return await use(admin)
            finally:
                await admin.close()
        return _run(ctx, go())

    def create_topic(self, ctx, topic, partitions=1, configs=None):
        async def use(admin):
            response = await admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=dict(configs or {}))],
                                                 timeout_ms=_ms(ctx, 10))
            _raise_errors(response, "topic_errors", f"create {topic}")
        self._with_admin(ctx, use)

    def delete_topics(self, ctx, topics):
        async def use(admin):
            response = await admin.delete_topics(list(topics), timeout_ms=_ms(ctx, 10))
            _raise_errors(response, "topic_error_codes", f"delete {topics}")
        self._with_admin(ctx, use)

    def metadata(self, ctx):
        async def use(admin):
            return set(await admin.list_topics()), await admin.describe_cluster()
        topics, cluster = self._with_admin(ctx, use)
        return topics, [(b["node_id"], b["host"], b["port"]) for b in cluster["brokers"]]

    def partition_count(self, ctx, topic):
        async def use(admin):
            return await admin.describe_topics([topic])
        [desc] = self._with_admin(ctx, use)
        if desc.get("error_code", 0) == UNKNOWN_TOPIC_OR_PARTITION:
            raise NotYet(f"describe {topic}: UNKNOWN_TOPIC_OR_PARTITION")  # not propagated yet: wait_until retries
        if desc.get("error_code", 0):
            raise Fail(f"describe {topic}: error code {desc['error_code']}")
        return len(desc["partitions"])

    def produce(self, ctx, topic, records, *, acks="all", compression="none", idempotent=False):
        async def go():
            producer = AIOKafkaProducer(
                bootstrap_servers=ctx.bootstrap, acks=acks, linger_ms=5, max_batch_size=64 * 1024,
                compression_type=None if compression == "none" else compression, enable_idempotence=idempotent,
                max_request_size=2 * 1024 * 1024, request_timeout_ms=_ms(ctx, 20), client_id="compat-aiokafka")
            await producer.start()
            try:
                futures = [await producer.send(topic, value=r.value, key=r.key, partition=r.partition,
                                               timestamp_ms=r.timestamp, headers=r.headers or None)
                           for r in records]
                out = []
                for md in await asyncio.gather(*futures):
                    out.append((-1, -1) if md is None else (md.partition, md.offset))  # None with acks=0
                return out
            finally:
                await producer.stop()
        return _run(ctx, go())

    def _consumer(self, ctx: Ctx, *topics: str, **extra) -> "AIOKafkaConsumer":
        return AIOKafkaConsumer(*topics, bootstrap_servers=ctx.bootstrap, enable_auto_commit=False,
                                fetch_max_wait_ms=100, max_partition_fetch_bytes=2 * 1024 * 1024,
                                request_timeout_ms=_ms(ctx, 30) + 1000, client_id="compat-aiokafka", **extra)

    def _with_consumer(self, ctx: Ctx, use, *topics: str, **extra) -> Any:
        async def go():
            consumer = self._consumer(ctx, *topics, **extra)
            await consumer.start()
            try:
                return await use(consumer)
            finally:
                await consumer.stop()
        return _run(ctx, go())

    def consume(self, ctx, topic, starts, count, *, read_committed=False):
        async def use(consumer):
            tps = {p: TopicPartition(topic, p) for p in starts}
            consumer.assign(list(tps.values()))
            for p, offset in starts.items():
                if offset is None:
                    await consumer.seek_to_beginning(tps[p])
                else:
                    consumer.seek(tps[p], offset)
            return await _poll(ctx, consumer, count)
        return self._with_consumer(ctx, use,
                                   isolation_level="read_committed" if read_committed else "read_uncommitted")

    def transactional_produce(self, ctx, topic, transactional_id, transactions):
        async def go():
            producer = AIOKafkaProducer(bootstrap_servers=ctx.bootstrap, transactional_id=transactional_id,
                                        enable_idempotence=True, linger_ms=5, request_timeout_ms=_ms(ctx, 20),
                                        client_id="compat-aiokafka")
            await producer.start()  # InitProducerId for the transactional id
            try:
                for records, commit in transactions:
                    await producer.begin_transaction()
                    futures = [await producer.send(topic, value=r.value, key=r.key, partition=r.partition)
                               for r in records]
                    await asyncio.gather(*futures)  # acked before the end: aborted records are in the log too
                    if commit:
                        await producer.commit_transaction()
                    else:
                        await producer.abort_transaction()
            finally:
                await producer.stop()
        _run(ctx, go())

    def end_offsets(self, ctx, topic, partitions):
        async def use(consumer):
            ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
            return {tp.partition: off for tp, off in ends.items()}
        return self._with_consumer(ctx, use)

    def offset_for_time(self, ctx, topic, partition, ts):
        async def use(consumer):
            tp = TopicPartition(topic, partition)
            found = (await consumer.offsets_for_times({tp: ts}))[tp]
            return None if found is None else (found.offset, found.timestamp)
        return self._with_consumer(ctx, use)

    def partition_for_key(self, key, partitions):
        from aiokafka.partitioner import murmur2
        return (murmur2(key) & 0x7FFFFFFF) % partitions

    def group_consume(self, ctx, topic, group, count):
        async def use(consumer):
            got = await _poll(ctx, consumer, count)
            last = got[-1]
            await consumer.commit({TopicPartition(topic, last.partition): last.offset + 1})
            return got
        return self._with_consumer(ctx, use, topic, group_id=group, auto_offset_reset="earliest",
                                   session_timeout_ms=10000, heartbeat_interval_ms=1000)

    def group_list_describe(self, ctx, topic, group):
        async def use(consumer):
            loop = asyncio.get_running_loop()
            deadline = loop.time() + ctx.remaining(20)
            while not consumer.assignment() and loop.time() < deadline:
                await consumer.getmany(timeout_ms=200)
            if not consumer.assignment():
                raise Fail("the member got no assignment")
            admin = AIOKafkaAdminClient(bootstrap_servers=ctx.bootstrap, client_id="compat-aiokafka")
            await admin.start()
            try:
                listed = any(g[0] == group for g in await admin.list_consumer_groups())
                responses = await admin.describe_consumer_groups([group])
            finally:
                await admin.close()
            for response in responses:
                for g in response.groups:
                    error_code, group_id, state, _ptype, _proto, members = g[:6]
                    if group_id == group:
                        if error_code:
                            raise Fail(f"describe group: error code {error_code}")
                        return {"listed": listed, "state": state, "members": len(members)}
            raise Fail("describe_consumer_groups did not return the group")
        return self._with_consumer(ctx, use, topic, group_id=group, auto_offset_reset="earliest",
                                   session_timeout_ms=10000, heartbeat_interval_ms=1000)


def _raise_errors(response: Any, field: str, what: str) -> None:
    for item in getattr(response, field, []) or []:
        name, code = item[0], item[1]
        if code:
            message = item[2] if len(item) > 2 and isinstance(item[2], str) else ""
            raise Fail(f"{what}: {name} error code {code} {message}".rstrip())


async def _poll(ctx: Ctx, consumer: "AIOKafkaConsumer", count: int) -> list[Rec]:
    got: list[Rec] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + ctx.remaining()
    while len(got) < count and loop.time() < end:
        for records in (await consumer.getmany(timeout_ms=200)).values():
            for m in records:
                got.append(Rec(value=m.value, key=m.key, headers=[(k, bytes(v)) for k, v in (m.headers or [])],
                               timestamp=m.timestamp, partition=m.partition, offset=m.offset))
    if len(got) < count:
        raise Fail(f"consumed {len(got)} of {count} records before the deadline")
    got.sort(key=lambda r: (r.partition, r.offset))
    return got[:count]


def cleanup(ctx: Ctx) -> None:
    if ctx.topics:
        AiokafkaDriver().delete_topics(ctx, ctx.topics)


checks = CheckSet(CLIENT)
register(checks, AiokafkaDriver())


# ---------------------------------------------------------------- admin APIs beyond topics

def _entries(response: Any) -> dict[str, tuple[str, int]]:
    """name -> (value, config_source) of a DescribeConfigs response's first resource (aiokafka's
    responses are tuples: resource = (error, message, type, name, entries), entry = (name, value,
    read_only, source, ...))."""
    return {e[0]: (e[1], e[3]) for e in response.resources[0][4]}


@checks.feature("admin-configs")
def admin_configs(ctx: Ctx) -> None:
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    topic = ctx.topic()
    AiokafkaDriver().create_topic(ctx, topic, 1, {"retention.ms": "3600000"})

    async def use(admin: "AIOKafkaAdminClient") -> tuple[dict, dict, dict]:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic)
        before = _entries((await admin.describe_configs([resource]))[0])
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "7200000"})])
        after = _entries((await admin.describe_configs([resource]))[0])
        node = (await admin.describe_cluster())["brokers"][0]["node_id"]
        broker = _entries((await admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, str(node))]))[0])
        return before, after, broker
    before, after, broker = AiokafkaDriver()._with_admin(ctx, use)
    expect(before["retention.ms"] == ("3600000", 1), f"retention.ms described as {before.get('retention.ms')}")
    expect(before["segment.bytes"][1] == 5, "segment.bytes is not reported as a default")
    expect(after["retention.ms"][0] == "7200000", f"altered retention.ms described as {after.get('retention.ms')}")
    expect("num.partitions" in broker, "the broker's configs lack num.partitions")


@checks.feature("admin-partitions")
def admin_partitions(ctx: Ctx) -> None:
    from aiokafka.admin import NewPartitions
    from aiokafka.errors import InvalidReplicationAssignmentError

    topic = ctx.topic()
    AiokafkaDriver().create_topic(ctx, topic, 1)

    async def use(admin: "AIOKafkaAdminClient") -> str:
        node = (await admin.describe_cluster())["brokers"][0]["node_id"]
        await admin.create_partitions({topic: NewPartitions(3, [[node], [node]])})
        try:
            await admin.create_partitions({topic: NewPartitions(4, [[999]])})
        except InvalidReplicationAssignmentError:
            return "refused"
        return "accepted"
    expect(AiokafkaDriver()._with_admin(ctx, use) == "refused", "a partition assigned to broker 999 was accepted")
    wait_until(ctx, lambda: AiokafkaDriver().partition_count(ctx, topic) == 3, f"{topic} to have 3 partitions")


checks.not_supported("aiokafka's admin client has no log dir API", "admin-log-dirs")
checks.not_supported("aiokafka's admin client has no election or reassignment API", "admin-replicas")
checks.not_supported("aiokafka has no client quota API", "client-quotas")
checks.not_supported("aiokafka's fetcher sends sessionless fetches (no KIP-227)", "fetch-sessions")
