"""Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..coordinator.offsets_schema import CommittedOffset
from ..protocol.errors import ErrorCode
from ..protocol.primitives import Msg
from .registry import RequestContext, handles

if TYPE_CHECKING:
    from ..broker import Broker

OFFSET_METADATA_MAX_BYTES = 4096  # Kafka's offset.metadata.max.bytes


def offsets_to_commit(broker: "Broker", topics: list[Msg], code: ErrorCode = ErrorCode.NONE
                      ) -> tuple[dict[tuple[str, int], CommittedOffset], dict[tuple[str, int], ErrorCode]]:
    """OffsetCommit's and TxnOffsetCommit's per-partition checks: (offsets accepted, errors of the
    others). With a group-level `code`, every partition gets it."""
    now = int(time.time() * 1000)
    accepted: dict[tuple[str, int], CommittedOffset] = {}
    codes: dict[tuple[str, int], ErrorCode] = {}
    for t in topics:
        for p in t.partitions:
            key = (t.name, p.partition_index)
            metadata = p.committed_metadata or ""
            if code:
                codes[key] = code
            elif broker.partition(t.name, p.partition_index) is None:
                codes[key] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            elif len(metadata.encode()) > OFFSET_METADATA_MAX_BYTES:
                codes[key] = ErrorCode.OFFSET_METADATA_TOO_LARGE
            else:
                accepted[key] = CommittedOffset(p.committed_offset, p.get("committed_leader_epoch", -1), metadata, now)
    return accepted, codes


@handles("OFFSET_COMMIT", 0, 9)
async def offset_commit(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    code = broker.groups.commit_check(req.group_id, req.get("member_id", ""), req.get("group_instance_id"),
                                      req.get("generation_id_or_member_epoch", -1), ctx.api_version)
    accepted, codes = offsets_to_commit(broker, req.topics, code)
    if not code:
        written = broker.groups.commit(req.group_id, accepted)
        codes.update({key: written for key in accepted})
    return Msg(throttle_time_ms=0, topics=[
        {"name": t.name, "partitions": [{"partition_index": p.partition_index,
                                         "error_code": codes[(t.name, p.partition_index)]} for p in t.partitions]}
        for t in req.topics])


def _fetch_group(broker: "Broker", group_id: str, topics: list[Msg] | None,
                 require_stable: bool = False) -> tuple[ErrorCode, list[dict[str, Any]]]:
    code, committed = broker.groups.fetch_offsets(group_id)
    # require_stable (v7+, read_committed consumers): an offset of a transaction still open is
    # UNSTABLE_OFFSET_COMMIT, so the consumer waits rather than starting from the older one.
    unstable = broker.groups.unstable_partitions(group_id) if require_stable and not code else set()
    if topics is None:  # all committed offsets of the group
        wanted: dict[str, list[int]] = {}
        for (topic, partition) in committed:
            wanted.setdefault(topic, []).append(partition)
    else:
        wanted = {t.name: list(t.partition_indexes) for t in topics}
    out = []
    for topic, partitions in wanted.items():
        parts = []
        for p in partitions:
            c = committed.get((topic, p))
            if (topic, p) in unstable:
                parts.append({"partition_index": p, "committed_offset": -1, "committed_leader_epoch": -1,
                              "metadata": "", "error_code": ErrorCode.UNSTABLE_OFFSET_COMMIT})
                continue
            parts.append({"partition_index": p, "committed_offset": c.offset if c else -1,
                          "committed_leader_epoch": c.leader_epoch if c else -1,
                          "metadata": c.metadata if c else "", "error_code": code})
        out.append({"name": topic, "partitions": parts})
    return code, out


@handles("OFFSET_FETCH", 0, 9)
async def offset_fetch(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    if ctx.api_version >= 8:
        groups = []
        for g in req.groups:
            code, topics = _fetch_group(broker, g.group_id, g.topics, req.require_stable)
            groups.append({"group_id": g.group_id, "topics": topics, "error_code": code})
        return Msg(throttle_time_ms=0, groups=groups)
    code, topics = _fetch_group(broker, req.group_id, req.topics, req.get("require_stable", False))
    return Msg(throttle_time_ms=0, topics=topics, error_code=code)


@handles("OFFSET_DELETE", 0, 0)
async def offset_delete(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    code, subscribed = broker.groups.offsets_deletable(req.group_id)
    if code:
        return Msg(error_code=code, throttle_time_ms=0, topics=[])
    doomed = [(t.name, p.partition_index) for t in req.topics if t.name not in subscribed for p in t.partitions]
    written = broker.groups.delete_offsets(req.group_id, doomed)
    if written:  # the tombstones were not stored: nothing was deleted
        return Msg(error_code=written, throttle_time_ms=0, topics=[])
    topics = [{"name": t.name, "partitions": [
        {"partition_index": p.partition_index,
         "error_code": ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC if t.name in subscribed else ErrorCode.NONE}
        for p in t.partitions]} for t in req.topics]
    return Msg(error_code=0, throttle_time_ms=0, topics=topics)
