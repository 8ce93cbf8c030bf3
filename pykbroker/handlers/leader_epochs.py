"""OffsetForLeaderEpoch: where a leader epoch ends, so a consumer can validate its position (KIP-320)
and, later, a follower can truncate a diverged log (KIP-101/KIP-279)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..protocol.errors import ErrorCode
from ..protocol.primitives import Msg
from .registry import RequestContext, handles

if TYPE_CHECKING:
    from ..broker import Broker

UNDEFINED_EPOCH, UNDEFINED_OFFSET = -1, -1


@handles("OFFSET_FOR_LEADER_EPOCH", 0, 4)
async def offset_for_leader_epoch(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    return Msg(throttle_time_ms=0, topics=[
        {"topic": t.topic, "partitions": [_partition(broker, t.topic, p) for p in t.partitions]} for t in req.topics])


def _partition(broker: "Broker", topic: str, p: Msg) -> dict[str, Any]:
    out = {"error_code": 0, "partition": p.partition, "leader_epoch": UNDEFINED_EPOCH, "end_offset": UNDEFINED_OFFSET}
    partition = broker.partition(topic, p.partition)
    if partition is None:
        out["error_code"] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        return out
    out["error_code"] = partition.check_leader_epoch(p.get("current_leader_epoch", -1))
    if not out["error_code"]:
        out["leader_epoch"], out["end_offset"] = partition.epoch_end_offset(p.leader_epoch)
    return out
