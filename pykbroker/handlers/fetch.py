"""Fetch: whole batches read straight from the segments, with min_bytes/max_wait long-polling.

A fetch that cannot fill min_bytes waits until one of its partitions has more for it (it is woken
at once, not polled: a follower's fetch by an append, a consumer's when the high watermark or last
stable offset moves, as Kafka's DelayedFetch) or max_wait_ms passes. Fetch v0-3 get the batches down-converted to the
message format of their version. Fetch v7+ may use a fetch session (KIP-227, cluster/fetch_sessions):
an incremental request names only the partitions whose position changed, and its response only the
partitions with something new.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import trio

from ..cluster.replica_selector import NO_PREFERRED, preferred_read_replica
from ..cluster.roles import follower_fetched
from ..cluster.fetch_sessions import FINAL_EPOCH, INITIAL_EPOCH, NO_SESSION, CachedPartition, FetchSession
from ..log.errors import OffsetOutOfRangeError
from ..protocol.errors import ErrorCode
from ..protocol.primitives import ZERO_UUID, Msg
from ..protocol.records import v2_to_legacy_message_set
from ..quotas import ANONYMOUS_USER
from ..server.connection import Throttled
from .registry import RequestContext, handles

if TYPE_CHECKING:
    from ..broker import Broker
    from ..cluster.partition import Partition

# v18 (KIP-1166) adds a tagged high_watermark that only followers send; consumers never do.
@handles("FETCH", 0, 18)
async def fetch(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg | Throttled:
    v = ctx.api_version
    max_wait_s = max(req.max_wait_ms, 0) / 1000
    quota = broker.client_quotas.fetch
    replica_id = _replica_id(req, v)
    replica = replica_id >= 0  # a follower: reads up to the log end, so appends wake it (consumers: the HW)
    # Kafka: min(request's max_bytes, broker fetch.max.bytes, what the consumer's byte-rate quota allows
    # in one quota window); v0-2 have no max_bytes of their own. Followers are not clients: no quota.
    max_bytes = int(min(req.get("max_bytes", 0x7FFFFFFF), broker.config.fetch_max_bytes,
                        quota.max_value_in_window(ANONYMOUS_USER, ctx.client_id) if replica_id < 0 else 0x7FFFFFFF))
    min_bytes = min(req.min_bytes, max_bytes)
    isolation = req.get("isolation_level", 0)
    session, incremental, error = _session(broker, req, v)
    if error:
        return Msg(throttle_time_ms=0, error_code=error, session_id=NO_SESSION, responses=[])
    wanted = _session_partitions(session) if incremental else _resolve(broker, req.topics, v)
    if replica_id >= 0:
        _record_follower_fetches(broker, wanted, replica_id)
    # KIP-392: a consumer's v11+ fetch may be served by a follower, and carries its rack.
    client_rack = (req.get("rack_id") or "") if v >= 11 and replica_id < 0 else None
    deadline = trio.current_time() + max_wait_s
    while True:
        event = trio.Event()
        # Register before reading: an append between the read and the wait still wakes us.
        waited = [p for t, _, parts in wanted if t is not None for q in parts
                  if (p := broker.partition(t, q.partition)) is not None]
        for p in waited:
            p.waiters.add_fetch(event, replica)
        try:
            responses, total = _read_all(broker, wanted, max_bytes, v, isolation, replica, client_rack)
            redirected = any(p["preferred_read_replica"] >= 0 for t in responses for p in t["partitions"])
            if total >= min_bytes or max_wait_s <= 0 or trio.current_time() >= deadline or not waited or redirected:
                break
            _release(responses)  # read again once woken
            with trio.move_on_at(deadline):
                await event.wait()
        finally:
            for p in waited:
                p.waiters.remove_fetch(event, replica)
    throttle_ms = quota.record(ANONYMOUS_USER, ctx.client_id, total) if replica_id < 0 else 0
    if throttle_ms:
        return _throttled(broker, quota, ctx, total, session, incremental, responses, throttle_ms)
    if session is not None:
        responses = _remember(broker, session, wanted, responses, incremental, v)
    return Msg(throttle_time_ms=0, error_code=0, session_id=session.session_id if session else NO_SESSION,
               responses=responses)


def _throttled(broker: "Broker", quota: Any, ctx: RequestContext, total: int, session: FetchSession | None,
               incremental: bool, responses: list[dict[str, Any]], throttle_ms: int) -> Throttled:
    """Over the consumer's byte rate, Kafka answers with no data (taking back the bytes it recorded,
    since they are not sent) and mutes the connection; a session the fetch would have created is
    not kept (FullFetchContext.getThrottledResponse answers with no session id)."""
    quota.unrecord(ANONYMOUS_USER, ctx.client_id, total)
    _release(responses)
    session_id = NO_SESSION
    if session is not None:
        if incremental:
            session_id = session.session_id
        else:
            broker.fetch_sessions.remove(session.session_id)
    return Throttled(Msg(throttle_time_ms=throttle_ms, error_code=0, session_id=session_id, responses=[]),
                     throttle_ms)


def _replica_id(req: Msg, v: int) -> int:
    """A follower's broker id (KIP-903 moved it into the tagged ReplicaState in v15); -1 for consumers."""
    if v >= 15:
        state = req.get("replica_state")
        return state.replica_id if state is not None else -1
    return req.get("replica_id", -1)


def _record_follower_fetches(broker: "Broker", wanted: list[tuple[str | None, Any, list[Any]]],
                             replica_id: int) -> None:
    """The leader learns each follower's log end offset from its fetch offsets (before any wait,
    so that the high watermark moves and acks=all producers are answered while the follower waits)."""
    for name, _, parts in wanted:
        for q in parts:
            partition = broker.partition(name, q.partition) if name is not None else None
            if partition is not None and partition.replication is not None and partition.is_leader:
                if follower_fetched(partition, replica_id, q.fetch_offset) and broker.cluster is not None:
                    broker.cluster.isr_check_soon()


def _key(topic: str | None, topic_id: Any, partition: int, v: int) -> tuple[Any, int]:
    return (topic_id if v >= 13 else topic, partition)


def _session(broker: "Broker", req: Msg, v: int) -> tuple[FetchSession | None, bool, ErrorCode]:
    """(session, incremental?, error) for this request, as Kafka's FetchManager.newContext."""
    if v < 7:
        return None, False, ErrorCode.NONE
    cache = broker.fetch_sessions
    session_id, epoch = req.session_id, req.session_epoch
    if epoch in (INITIAL_EPOCH, FINAL_EPOCH):
        if session_id != NO_SESSION:
            cache.remove(session_id)
        if epoch == FINAL_EPOCH:
            return None, False, ErrorCode.NONE  # a sessionless full fetch
        return cache.create(OrderedDict()), False, ErrorCode.NONE
    session = cache.get(session_id)
    if session is None:
        return None, False, ErrorCode.FETCH_SESSION_ID_NOT_FOUND
    if epoch != session.epoch:
        return None, False, ErrorCode.INVALID_FETCH_SESSION_EPOCH
    session.epoch = epoch + 1 if epoch < 0x7FFFFFFF else 1
    for name, topic_id, parts in _resolve(broker, req.topics, v):
        for p in parts:
            key = _key(name, topic_id, p.partition, v)
            cached = session.partitions.get(key)
            if cached is None:
                session.partitions[key] = _cached(name, topic_id, p)
            else:
                cached.topic = name
                cached.fetch_offset, cached.partition_max_bytes = p.fetch_offset, p.partition_max_bytes
                cached.current_leader_epoch = p.get("current_leader_epoch", -1)
    for forgotten in req.forgotten_topics_data:  # after the updates, as Kafka's FetchSession.update
        name = forgotten.get("topic")
        for partition in forgotten.partitions:
            session.partitions.pop(_key(name, forgotten.get("topic_id", ZERO_UUID), partition, v), None)
    return session, True, ErrorCode.NONE


def _cached(name: str | None, topic_id: Any, p: Msg) -> CachedPartition:
    return CachedPartition(name, topic_id, p.partition, p.fetch_offset, p.partition_max_bytes,
                           p.get("current_leader_epoch", -1))


def _session_partitions(session: FetchSession) -> list[tuple[str | None, Any, list[Any]]]:
    """The session's partitions, consecutive ones of a topic grouped (as Kafka's response is)."""
    out: list[tuple[str | None, Any, list[Any]]] = []
    for cached in session.partitions.values():
        if out and out[-1][0] == cached.topic and out[-1][1] == cached.topic_id:
            out[-1][2].append(cached)
        else:
            out.append((cached.topic, cached.topic_id, [cached]))
    return out


def _remember(broker: "Broker", session: FetchSession, wanted: list[tuple[str | None, Any, list[Any]]],
              responses: list[dict[str, Any]], incremental: bool, v: int) -> list[dict[str, Any]]:
    """Record what each partition was told; an incremental response keeps only the changed ones."""
    out = []
    with_records = []
    for (name, topic_id, parts), topic in zip(wanted, responses):
        kept = []
        for p, result in zip(parts, topic["partitions"]):
            key = _key(name, topic_id, p.partition, v)
            cached = session.partitions.get(key) if incremental else None
            if cached is None:
                cached = session.partitions[key] = _cached(name, topic_id, p)
            if cached.changed(result) or not incremental:
                kept.append(result)
            else:
                close = getattr(result["records"], "close", None)
                if close is not None:
                    close()
            if len(result["records"]) > 0:
                with_records.append(key)
        if kept:
            out.append({**topic, "partitions": kept})
    session.rotate(with_records)
    return out


def _release(responses: list[dict[str, Any]]) -> None:
    for t in responses:
        for p in t["partitions"]:
            close = getattr(p["records"], "close", None)
            if close is not None:
                close()


def _resolve(broker: "Broker", topics: list[Msg], v: int) -> list[tuple[str | None, Any, list[Msg]]]:
    """(topic name or None when unknown, topic id, partitions) in request order."""
    out = []
    for t in topics:
        if v >= 13:
            topic = broker.topic_by_id(t.topic_id)
            out.append((topic.name if topic else None, t.topic_id, t.partitions))
        else:
            out.append((t.topic, ZERO_UUID, t.partitions))
    return out


def _read_all(broker: "Broker", wanted: list[tuple[str | None, Any, list[Msg]]], max_bytes: int,
              v: int, isolation: int, replica: bool = False,
              client_rack: str | None = None) -> tuple[list[dict[str, Any]], int]:
    total = 0
    responses = []
    for name, topic_id, parts in wanted:
        results = []
        for p in parts:
            result, size = _read_partition(broker, name, p, max_bytes - total, first=total == 0, v=v,
                                           isolation=isolation, replica=replica, client_rack=client_rack)
            total += size
            results.append(result)
        responses.append({"topic": name or "", "topic_id": topic_id, "partitions": results})
    return responses, total


def _read_partition(broker: "Broker", name: str | None, p: Msg, budget: int, first: bool,
                    v: int, isolation: int, replica: bool = False,
                    client_rack: str | None = None) -> tuple[dict[str, Any], int]:
    index = p.partition
    partition = broker.partition(name, index) if name is not None else None
    if partition is None:
        code = ErrorCode.UNKNOWN_TOPIC_ID if v >= 13 else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        return _empty(index, code), 0
    if partition.replication is not None:  # cluster mode: only the leader serves, at its epoch (KIP-320)
        current = p.current_leader_epoch if isinstance(p, CachedPartition) else p.get("current_leader_epoch", -1)
        code = partition.check_leader_epoch(current, require_leader=client_rack is None)
        if code:
            return _empty(index, code), 0
        if client_rack and broker.cluster is not None and broker.config.replica_selector_class:
            preferred = preferred_read_replica(partition, client_rack, p.fetch_offset, broker.cluster.racks())
            if preferred != NO_PREFERRED:  # no read here: the consumer goes there (ReplicaManager.readFromLog)
                out = _empty(index, ErrorCode.NONE)
                out.update(high_watermark=partition.high_watermark, last_stable_offset=partition.last_stable_offset,
                           log_start_offset=partition.log_start_offset, preferred_read_replica=preferred)
                return out, 0
    limit = min(p.partition_max_bytes, max(budget, 0))
    try:
        # The first partition with data may exceed the limits by one batch, so a client whose
        # max bytes is smaller than a batch still makes progress (KIP-74). Records stay in the
        # segment files (sendfile), except for v0-3, which need them in memory to down-convert.
        result = partition.read(p.fetch_offset, limit, min_one_batch=first, isolation_level=isolation,
                                as_file_records=v >= 4, replica=replica)
    except OffsetOutOfRangeError:
        out = _empty(index, ErrorCode.OFFSET_OUT_OF_RANGE)
        out.update(high_watermark=partition.high_watermark, last_stable_offset=partition.last_stable_offset,
                   log_start_offset=partition.log_start_offset)
        return out, 0
    records = result.records
    if v < 4 and records:
        # Fetch v0-3 predate record batches: down-convert to magic 0 (v0-1) or 1 (v2-3), as Kafka does.
        records = v2_to_legacy_message_set(records, magic=0 if v < 2 else 1)
    return {"partition_index": index, "error_code": 0, "high_watermark": partition.high_watermark,
            "last_stable_offset": partition.last_stable_offset, "log_start_offset": result.log_start_offset,
            "aborted_transactions": _aborted(partition, p.fetch_offset, result, v, isolation),
            "preferred_read_replica": -1, "records": records}, len(records)


def _aborted(partition: "Partition", fetch_offset: int, result: Any, v: int, isolation: int) -> list[dict] | None:
    """read_committed (v4+): the aborted transactions overlapping the returned batches, whose
    records the consumer drops (Kafka's FetchResponse.abortedTransactions)."""
    if v < 4 or isolation == 0:
        return None
    if result.first_offset < 0:
        return []
    return [{"producer_id": pid, "first_offset": first}
            for pid, first in partition.aborted_transactions(fetch_offset, result.next_offset)]


def _empty(index: int, code: ErrorCode) -> dict[str, Any]:
    return {"partition_index": index, "error_code": code, "high_watermark": -1, "last_stable_offset": -1,
            "log_start_offset": -1, "aborted_transactions": None, "preferred_read_replica": -1,
            "records": b""}
