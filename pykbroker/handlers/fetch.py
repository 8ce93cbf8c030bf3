"""Fetch: whole batches read straight from the segments, with min_bytes/max_wait long-polling.

A fetch that cannot fill min_bytes waits until data is appended to one of its partitions (it is
woken at once, not polled) or max_wait_ms passes. Fetch v0-3 get the batches down-converted to the message format of their version.
Fetch sessions (KIP-227) are not kept: the
response's session_id 0 tells clients to send full fetch requests, as Kafka does when its session
cache is full.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from ..log.errors import OffsetOutOfRangeError
from ..protocol.errors import ErrorCode
from ..protocol.primitives import ZERO_UUID, Msg
from ..protocol.records import v2_to_legacy_message_set
from .registry import RequestContext, handles

if TYPE_CHECKING:
    from ..broker import Broker
    from ..cluster.partition import Partition

@handles("FETCH", 0, 17)
async def fetch(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    v = ctx.api_version
    max_wait_s = max(req.max_wait_ms, 0) / 1000
    min_bytes = req.min_bytes
    max_bytes = req.get("max_bytes", 0x7FFFFFFF)
    isolation = req.get("isolation_level", 0)
    wanted = _resolve(broker, req.topics, v)
    deadline = trio.current_time() + max_wait_s
    while True:
        event = trio.Event()
        # Register before reading: an append between the read and the wait still wakes us.
        waited = [p for t, _, parts in wanted if t is not None for q in parts
                  if (p := broker.partition(t, q.partition)) is not None]
        for p in waited:
            p.add_waiter(event)
        try:
            responses, total = _read_all(broker, wanted, max_bytes, v, isolation)
            if total >= min_bytes or max_wait_s <= 0 or trio.current_time() >= deadline or not waited:
                break
            _release(responses)  # read again once woken
            with trio.move_on_at(deadline):
                await event.wait()
        finally:
            for p in waited:
                p.remove_waiter(event)
    return Msg(throttle_time_ms=0, error_code=0, session_id=0, responses=responses)


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
              v: int, isolation: int) -> tuple[list[dict[str, Any]], int]:
    total = 0
    responses = []
    for name, topic_id, parts in wanted:
        results = []
        for p in parts:
            result, size = _read_partition(broker, name, p, max_bytes - total, first=total == 0, v=v,
                                           isolation=isolation)
            total += size
            results.append(result)
        responses.append({"topic": name or "", "topic_id": topic_id, "partitions": results})
    return responses, total


def _read_partition(broker: "Broker", name: str | None, p: Msg, budget: int, first: bool,
                    v: int, isolation: int) -> tuple[dict[str, Any], int]:
    index = p.partition
    partition = broker.partition(name, index) if name is not None else None
    if partition is None:
        code = ErrorCode.UNKNOWN_TOPIC_ID if v >= 13 else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        return _empty(index, code), 0
    limit = min(p.partition_max_bytes, max(budget, 0))
    try:
        # The first partition with data may exceed the limits by one batch, so a client whose
        # max bytes is smaller than a batch still makes progress (KIP-74). Records stay in the
        # segment files (sendfile), except for v0-3, which need them in memory to down-convert.
        result = partition.read(p.fetch_offset, limit, min_one_batch=first, isolation_level=isolation,
                                as_file_records=v >= 4)
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
