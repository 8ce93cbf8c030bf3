"""The consumer group protocol of KIP-848: ConsumerGroupHeartbeat and ConsumerGroupDescribe."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..protocol.primitives import Msg
from .registry import AUTHORIZED_OPERATIONS_OMITTED, RequestContext, handles

if TYPE_CHECKING:
    from ..broker import Broker



@handles("CONSUMER_GROUP_HEARTBEAT", 0, 0)
async def consumer_group_heartbeat(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    result = broker.consumer_groups.heartbeat(req, ctx.client_id or "", ctx.client_host)
    return Msg(throttle_time_ms=0, **result)


@handles("CONSUMER_GROUP_DESCRIBE", 0, 0)
async def consumer_group_describe(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    groups = []
    for group_id in req.group_ids:
        described = broker.consumer_groups.describe(group_id)
        described["authorized_operations"] = AUTHORIZED_OPERATIONS_OMITTED
        groups.append(described)
    return Msg(throttle_time_ms=0, groups=groups)
