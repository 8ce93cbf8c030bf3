"""ListOffsets: earliest, latest, max timestamp, and the first record at or after a timestamp."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..log.partition_log import (
    EARLIEST_LOCAL_TIMESTAMP, EARLIEST_PENDING_UPLOAD_TIMESTAMP, EARLIEST_TIMESTAMP, LATEST_TIERED_TIMESTAMP,
    LATEST_TIMESTAMP, MAX_TIMESTAMP,
)
from ..protocol.errors import ErrorCode
from ..protocol.primitives import Msg
from .registry import RequestContext, handles

if TYPE_CHECKING:
    from ..broker import Broker


#: The first version that may ask for each special timestamp (Kafka's ReplicaManager
#: timestampMinSupportedVersion); any other negative timestamp, or an older version, is UNSUPPORTED_VERSION.
SPECIAL_TIMESTAMP_SINCE = {LATEST_TIMESTAMP: 0, EARLIEST_TIMESTAMP: 0, MAX_TIMESTAMP: 7, EARLIEST_LOCAL_TIMESTAMP: 8,
                           LATEST_TIERED_TIMESTAMP: 9, EARLIEST_PENDING_UPLOAD_TIMESTAMP: 11}
#: Without remote (tiered) storage these have no offset: Kafka answers offset -1 with leader epoch -1.
TIERED_ONLY = (LATEST_TIERED_TIMESTAMP, EARLIEST_PENDING_UPLOAD_TIMESTAMP)


# v10 (KIP-1075) adds timeout_ms for lookups in remote (tiered) storage, which this broker has not.
# v11 (KIP-1023) adds timestamp -6, the earliest offset not yet uploaded to remote storage: with none
# here it is answered as Kafka answers it for a topic without remote storage.
@handles("LIST_OFFSETS", 0, 11)
async def list_offsets(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    topics = []
    for t in req.topics:
        parts = [_partition(broker, t.name, p, ctx.api_version, req.get("isolation_level", 0)) for p in t.partitions]
        topics.append({"name": t.name, "partitions": parts})
    return Msg(throttle_time_ms=0, topics=topics)


def _partition(broker: "Broker", topic: str, p: Msg, v: int, isolation: int) -> dict[str, Any]:
    out: dict[str, Any] = {"partition_index": p.partition_index, "error_code": 0, "old_style_offsets": [],
                           "timestamp": -1, "offset": -1, "leader_epoch": 0}
    if p.timestamp < 0 and v < SPECIAL_TIMESTAMP_SINCE.get(p.timestamp, 1 << 15):
        out["error_code"] = ErrorCode.UNSUPPORTED_VERSION
        return out
    partition = broker.partition(topic, p.partition_index)
    if partition is None:
        out["error_code"] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        return out
    out["error_code"] = partition.check_leader_epoch(p.get("current_leader_epoch", -1))
    if out["error_code"]:
        return out
    out["leader_epoch"] = -1 if p.timestamp in TIERED_ONLY else partition.leader_epoch
    found = partition.fetch_offset_by_timestamp(p.timestamp, isolation)
    if found is not None:
        out["offset"], out["timestamp"] = found
    if v == 0:
        # v0 answers with a list of segment-start offsets; clients only ask for one.
        out["old_style_offsets"] = [] if found is None else [found[0]][: max(p.max_num_offsets, 0)]
    return out
