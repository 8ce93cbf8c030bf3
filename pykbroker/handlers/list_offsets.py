"""ListOffsets: earliest, latest, max timestamp, and the first record at or after a timestamp."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..protocol.errors import ErrorCode
from ..protocol.primitives import Msg
from .registry import RequestContext, handles

if TYPE_CHECKING:
    from ..broker import Broker

LATEST, EARLIEST, MAX_TIMESTAMP = -1, -2, -3


# v10 (KIP-1075) adds timeout_ms for lookups in remote (tiered) storage, which this broker has not.
# v11 (KIP-1023, timestamp -6 = earliest pending upload) is not served.
@handles("LIST_OFFSETS", 0, 10)
async def list_offsets(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    topics = []
    for t in req.topics:
        parts = [_partition(broker, t.name, p, ctx.api_version, req.get("isolation_level", 0)) for p in t.partitions]
        topics.append({"name": t.name, "partitions": parts})
    return Msg(throttle_time_ms=0, topics=topics)


def _partition(broker: "Broker", topic: str, p: Msg, v: int, isolation: int) -> dict[str, Any]:
    out: dict[str, Any] = {"partition_index": p.partition_index, "error_code": 0, "old_style_offsets": [],
                           "timestamp": -1, "offset": -1, "leader_epoch": 0}
    partition = broker.partition(topic, p.partition_index)
    if partition is None:
        out["error_code"] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        return out
    out["error_code"] = partition.check_leader_epoch(p.get("current_leader_epoch", -1))
    if out["error_code"]:
        return out
    out["leader_epoch"] = partition.leader_epoch
    found = partition.fetch_offset_by_timestamp(p.timestamp, isolation)
    if found is not None:
        out["offset"], out["timestamp"] = found
    if v == 0:
        # v0 answers with a list of segment-start offsets; clients only ask for one.
        out["old_style_offsets"] = [] if found is None else [found[0]][: max(p.max_num_offsets, 0)]
    return out
