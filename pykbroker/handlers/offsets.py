"""Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..coordinator.offsets_schema import CommittedOffset
from ..protocol.errors import ErrorCode
from ..protocol.primitives import ZERO_UUID, Msg
from .registry import RequestContext, handles
from .topic_ids import id_of, name_by_id

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


# v10 (KIP-848) names topics by id; the committed offsets stay stored by name (Kafka's OffsetCommitKey).
@handles("OFFSET_COMMIT", 0, 10)
async def offset_commit(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    by_id = ctx.api_version >= 10
    unknown = name_by_id(broker, req.topics) if by_id else set()
    code = broker.groups.commit_check(req.group_id, req.get("member_id", ""), req.get("group_instance_id"),
                                      req.get("generation_id_or_member_epoch", -1), ctx.api_version)
    accepted, codes = offsets_to_commit(broker, [t for t in req.topics if id(t) not in unknown], code)
    if not code:
        written = await broker.replicated_group_write(req.group_id, broker.groups.commit(req.group_id, accepted))
        codes.update({key: written for key in accepted})

    def error(t: Msg, p: Msg) -> ErrorCode:
        return ErrorCode.UNKNOWN_TOPIC_ID if id(t) in unknown else codes[(t.name, p.partition_index)]
    return Msg(throttle_time_ms=0, topics=[
        {"name": t.name, "topic_id": t.topic_id if by_id else None,
         "partitions": [{"partition_index": p.partition_index, "error_code": error(t, p)} for p in t.partitions]}
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


# v10 (KIP-848) names topics by id: an unknown id is UNKNOWN_TOPIC_ID, and a committed topic that no
# longer exists (so has no id) is left out of an all-topics answer, as Kafka does.
@handles("OFFSET_FETCH", 0, 10)
async def offset_fetch(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    if ctx.api_version >= 8:
        groups = [_fetch_group_v8(broker, g, req.require_stable, ctx.api_version >= 10) for g in req.groups]
        return Msg(throttle_time_ms=0, groups=groups)
    code, topics = _fetch_group(broker, req.group_id, req.topics, req.get("require_stable", False))
    return Msg(throttle_time_ms=0, topics=topics, error_code=code)


def _fetch_group_v8(broker: "Broker", g: Msg, require_stable: bool, by_id: bool) -> dict[str, Any]:
    unknown = name_by_id(broker, g.topics) if by_id and g.topics is not None else set()
    wanted = None if g.topics is None else [t for t in g.topics if id(t) not in unknown]
    code, topics = _fetch_group(broker, g.group_id, wanted, require_stable)
    if by_id:
        for t in topics:
            t["topic_id"] = id_of(broker, t["name"])
        topics = [t for t in topics if t["topic_id"] != ZERO_UUID]
        if not code:  # Kafka appends the unknown ids after the coordinator's answer
            topics += [{"name": "", "topic_id": t.topic_id, "partitions": [
                {"partition_index": p, "committed_offset": -1, "committed_leader_epoch": -1, "metadata": "",
                 "error_code": ErrorCode.UNKNOWN_TOPIC_ID} for p in t.partition_indexes]}
                for t in g.topics or [] if id(t) in unknown]
    return {"group_id": g.group_id, "topics": topics, "error_code": code}


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
