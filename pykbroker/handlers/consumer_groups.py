"""The consumer group protocol of KIP-848: ConsumerGroupHeartbeat and ConsumerGroupDescribe."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..coordinator.consumer_group import ConsumerHeartbeat, DescribedPartitions
from ..protocol.errors import ErrorCode
from ..protocol.primitives import Msg
from .registry import RequestContext, authorized_operations, handles

if TYPE_CHECKING:
    from ..broker import Broker


# v1 (Kafka 4, KIP-848 GA): SubscribedTopicRegex, resolved by the broker; the client chooses its
# member id (KIP-1082), so a join without one is refused.
@handles("CONSUMER_GROUP_HEARTBEAT", 0, 1)
async def consumer_group_heartbeat(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    if ctx.api_version >= 1 and not req.member_id:
        return Msg(throttle_time_ms=0, error_code=ErrorCode.INVALID_REQUEST, error_message="MemberId can't be empty.",
                   member_id=None, member_epoch=-1, heartbeat_interval_ms=0, assignment=None)
    owned = None if req.topic_partitions is None else {tp.topic_id: list(tp.partitions) for tp in req.topic_partitions}
    call = ConsumerHeartbeat(req.group_id, req.member_id, req.member_epoch, req.instance_id, req.rack_id,
                             req.rebalance_timeout_ms, req.subscribed_topic_names, req.server_assignor, owned,
                             req.get("subscribed_topic_regex"))
    r = broker.consumer_groups.heartbeat(call, ctx.client_id or "", ctx.client_host)
    assignment = None if r.assignment is None else {
        "topic_partitions": [{"topic_id": t, "partitions": p} for t, p in r.assignment.items()]}
    return Msg(throttle_time_ms=0, error_code=r.error, error_message=r.message, member_id=r.member_id,
               member_epoch=r.member_epoch, heartbeat_interval_ms=r.heartbeat_interval_ms, assignment=assignment)


def _partitions(described: list[DescribedPartitions]) -> dict:
    return {"topic_partitions": [{"topic_id": d.topic_id, "topic_name": d.topic_name, "partitions": d.partitions}
                                 for d in described]}


#: KIP-1099 member_type: every member here joined with ConsumerGroupHeartbeat.
CONSUMER_MEMBER = 1


# v1 (KIP-1099) only adds members[].member_type to the response.
@handles("CONSUMER_GROUP_DESCRIBE", 0, 1)
async def consumer_group_describe(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    groups = []
    for group_id in req.group_ids:
        d = broker.consumer_groups.describe(group_id)
        groups.append({
            "error_code": d.error, "error_message": d.message, "group_id": d.group_id, "group_state": d.state,
            "group_epoch": d.group_epoch, "assignment_epoch": d.assignment_epoch, "assignor_name": d.assignor,
            "members": [{"member_id": m.member_id, "instance_id": m.instance_id, "rack_id": m.rack_id,
                         "member_epoch": m.member_epoch, "client_id": m.client_id, "client_host": m.client_host,
                         "subscribed_topic_names": m.subscribed, "subscribed_topic_regex": m.regex,
                         "assignment": _partitions(m.assignment), "target_assignment": _partitions(m.target),
                         "member_type": CONSUMER_MEMBER}
                        for m in d.members],
            "authorized_operations": authorized_operations("group", req.include_authorized_operations)})
    return Msg(throttle_time_ms=0, groups=groups)
