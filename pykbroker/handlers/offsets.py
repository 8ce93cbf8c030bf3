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


@handles("OFFSET_COMMIT", 0, 9)
async def offset_commit(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    code = broker.groups.commit_check(req.group_id, req.get("member_id", ""), req.get("group_instance_id"),
                                      req.get("generation_id_or_member_epoch", -1))
    now = int(time.time() * 1000)
    accepted: dict[tuple[str, int], CommittedOffset] = {}
    topics = []
    for t in req.topics:
        parts = []
        for p in t.partitions:
            part_code = code
            if not part_code:
                metadata = p.committed_metadata or ""
                if broker.partition(t.name, p.partition_index) is None:
                    part_code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                elif len(metadata.encode()) > OFFSET_METADATA_MAX_BYTES:
                    part_code = ErrorCode.OFFSET_METADATA_TOO_LARGE
                else:
                    accepted[(t.name, p.partition_index)] = CommittedOffset(
                        p.committed_offset, p.get("committed_leader_epoch", -1), metadata, now)
            parts.append({"partition_index": p.partition_index, "error_code": part_code})
        topics.append({"name": t.name, "partitions": parts})
    if not code:
        broker.groups.commit(req.group_id, accepted)
    return Msg(throttle_time_ms=0, topics=topics)


def _fetch_group(broker: "Broker", group_id: str, topics: list[Msg] | None, v: int) -> list[dict[str, Any]]:
    committed = broker.groups.offsets.get(group_id)
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
            parts.append({"partition_index": p, "committed_offset": c.offset if c else -1,
                          "committed_leader_epoch": c.leader_epoch if c else -1,
                          "metadata": c.metadata if c else "", "error_code": 0})
        out.append({"name": topic, "partitions": parts})
    return out


@handles("OFFSET_FETCH", 0, 9)
async def offset_fetch(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    v = ctx.api_version
    if v >= 8:
        groups = [{"group_id": g.group_id, "topics": _fetch_group(broker, g.group_id, g.topics, v), "error_code": 0}
                  for g in req.groups]
        return Msg(throttle_time_ms=0, groups=groups)
    return Msg(throttle_time_ms=0, topics=_fetch_group(broker, req.group_id, req.topics, v), error_code=0)


@handles("OFFSET_DELETE", 0, 0)
async def offset_delete(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    state = broker.groups.state_of(req.group_id)
    if state is None:
        return Msg(error_code=ErrorCode.GROUP_ID_NOT_FOUND, throttle_time_ms=0, topics=[])
    subscribed = broker.groups.subscribed_topics(req.group_id)
    doomed = []
    topics = []
    for t in req.topics:
        code = ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC if t.name in subscribed else ErrorCode.NONE
        if not code:
            doomed += [(t.name, p.partition_index) for p in t.partitions]
        topics.append({"name": t.name, "partitions": [{"partition_index": p.partition_index, "error_code": code}
                                                      for p in t.partitions]})
    broker.groups.delete_offsets(req.group_id, doomed)
    return Msg(error_code=0, throttle_time_ms=0, topics=topics)
