"""Consumer groups (classic protocol): FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
ListGroups, DescribeGroups, DeleteGroups. The group logic lives in coordinator/."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..coordinator.group import GroupState
from ..protocol.errors import ErrorCode
from ..protocol.primitives import Msg
from .registry import RequestContext, authorized_operations, handles

if TYPE_CHECKING:
    from ..broker import Broker

GROUP_KEY, TRANSACTION_KEY = 0, 1


@handles("FIND_COORDINATOR", 0, 6)
async def find_coordinator(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    host, port = broker.advertised
    key_type = req.get("key_type", GROUP_KEY)

    if key_type == TRANSACTION_KEY:
        await broker.transaction_state_ready()  # Kafka creates __transaction_state on first use

    async def answer(key: str) -> dict:
        if key_type not in (GROUP_KEY, TRANSACTION_KEY):
            return {"key": key, "node_id": -1, "host": "", "port": -1, "error_code": ErrorCode.INVALID_REQUEST,
                    "error_message": f"unknown coordinator key type {key_type}"}
        placement = broker.group_placement if key_type == GROUP_KEY else broker.txn_placement
        if placement is not None:
            code, leader = await placement.coordinator_for(key)
            if leader is None:
                return {"key": key, "node_id": -1, "host": "", "port": -1, "error_code": code,
                        "error_message": code.name}
            return {"key": key, "node_id": leader.broker_id, "host": leader.host, "port": leader.port,
                    "error_code": 0, "error_message": None}
        return {"key": key, "node_id": broker.node_id, "host": host, "port": port, "error_code": 0,
                "error_message": None}

    if ctx.api_version >= 4:
        return Msg(throttle_time_ms=0, coordinators=[await answer(k) for k in req.coordinator_keys])
    one = await answer(req.key)
    return Msg(throttle_time_ms=0, error_code=one["error_code"], error_message=one["error_message"],
               node_id=one["node_id"], host=one["host"], port=one["port"])


@handles("JOIN_GROUP", 0, 9)
async def join_group(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    r = await broker.groups.join(
        req.group_id, req.member_id, req.get("group_instance_id"), req.protocol_type,
        [(p.name, bytes(p.metadata)) for p in req.protocols], req.session_timeout_ms,
        req.get("rebalance_timeout_ms", -1), ctx.client_id or "", ctx.client_host,
        require_known_member_id=ctx.api_version >= 4)
    protocol_name = r.protocol_name if r.protocol_name is not None or ctx.api_version >= 7 else ""  # nullable v7+
    return Msg(throttle_time_ms=0, error_code=r.error, generation_id=r.generation, protocol_type=r.protocol_type,
               protocol_name=protocol_name, leader=r.leader, skip_assignment=r.skip_assignment,
               member_id=r.member_id,
               members=[{"member_id": m.member_id, "group_instance_id": m.group_instance_id, "metadata": m.metadata}
                        for m in r.members])


@handles("SYNC_GROUP", 0, 5)
async def sync_group(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    r = await broker.groups.sync(
        req.group_id, req.member_id, req.get("group_instance_id"), req.generation_id,
        req.get("protocol_type"), req.get("protocol_name"),
        {a.member_id: bytes(a.assignment) for a in req.assignments})
    code = await broker.replicated_group_write(req.group_id, r.error)
    if code != r.error:
        r = r._replace(error=code, assignment=b"")
    return Msg(throttle_time_ms=0, error_code=r.error, protocol_type=r.protocol_type,
               protocol_name=r.protocol_name, assignment=r.assignment)


@handles("HEARTBEAT", 0, 4)
async def heartbeat(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    code = broker.groups.heartbeat(req.group_id, req.member_id, req.get("group_instance_id"), req.generation_id)
    return Msg(throttle_time_ms=0, error_code=code)


@handles("LEAVE_GROUP", 0, 5)
async def leave_group(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    if ctx.api_version >= 3:
        leaving = [(m.member_id, m.get("group_instance_id")) for m in req.members]
    else:
        leaving = [(req.member_id, None)]
    code, results = broker.groups.leave(req.group_id, leaving)
    if ctx.api_version < 3 and results:
        code = results[0].error
    return Msg(throttle_time_ms=0, error_code=code,
               members=[{"member_id": r.member_id, "group_instance_id": r.group_instance_id, "error_code": r.error}
                        for r in results])


@handles("LIST_GROUPS", 0, 5)
async def list_groups(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    states = {s.lower() for s in req.get("states_filter", [])}
    types = {t.lower() for t in req.get("types_filter", [])}
    code, listings = broker.groups.list_groups()
    groups = [{"group_id": g.group_id, "protocol_type": g.protocol_type, "group_state": g.state,
               "group_type": g.group_type}
              for g in listings
              if (not states or g.state.lower() in states) and (not types or g.group_type in types)]
    return Msg(throttle_time_ms=0, error_code=code, groups=groups)


# v6 (KIP-1043) answers GROUP_ID_NOT_FOUND, with a message, for a group that does not exist (before,
# a Dead group without error); it adds only that message field.
@handles("DESCRIBE_GROUPS", 0, 6)
async def describe_groups(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    out = []
    for group_id in req.groups:
        d = broker.groups.describe(group_id)
        error, message = d.error, None
        if ctx.api_version >= 6 and not error and d.state == GroupState.DEAD and not d.members and not d.protocol_type:
            error, message = ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} not found."
        out.append({"error_code": error, "error_message": message, "group_id": d.group_id, "group_state": d.state,
                    "protocol_type": d.protocol_type, "protocol_data": d.protocol,
                    "members": [{"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                                 "client_id": m.client_id, "client_host": m.client_host,
                                 "member_metadata": m.metadata, "member_assignment": m.assignment}
                                for m in d.members],
                    "authorized_operations": authorized_operations(
                        "group", req.get("include_authorized_operations", False))})
    return Msg(throttle_time_ms=0, groups=out)


# v3 only adds a nullable per-group error_message (left null), the request is unchanged.
@handles("DELETE_GROUPS", 0, 3)
async def delete_groups(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    return Msg(throttle_time_ms=0, results=[{"group_id": g, "error_code": broker.groups.delete_group(g)}
                                            for g in req.groups_names])
