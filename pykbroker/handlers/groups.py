"""Consumer groups (classic protocol): FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
ListGroups, DescribeGroups, DeleteGroups. The group logic lives in coordinator/."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..coordinator.group import GroupState
from ..protocol.errors import ErrorCode
from ..protocol.primitives import Msg
from .registry import AUTHORIZED_OPERATIONS_OMITTED, RequestContext, handles

if TYPE_CHECKING:
    from ..broker import Broker

GROUP_KEY, TRANSACTION_KEY = 0, 1


@handles("FIND_COORDINATOR", 0, 6)
async def find_coordinator(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    host, port = broker.advertised
    key_type = req.get("key_type", GROUP_KEY)

    def answer(key: str) -> dict:
        if key_type != GROUP_KEY:
            return {"key": key, "node_id": -1, "host": "", "port": -1,
                    "error_code": ErrorCode.COORDINATOR_NOT_AVAILABLE,
                    "error_message": "transactions are not supported by this broker yet"}
        return {"key": key, "node_id": broker.node_id, "host": host, "port": port, "error_code": 0,
                "error_message": None}

    if ctx.api_version >= 4:
        return Msg(throttle_time_ms=0, coordinators=[answer(k) for k in req.coordinator_keys])
    one = answer(req.key)
    return Msg(throttle_time_ms=0, error_code=one["error_code"], error_message=one["error_message"],
               node_id=one["node_id"], host=one["host"], port=one["port"])


@handles("JOIN_GROUP", 0, 9)
async def join_group(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    result = await broker.groups.join(
        req.group_id, req.member_id, req.get("group_instance_id"), req.protocol_type,
        [(p.name, bytes(p.metadata)) for p in req.protocols], req.session_timeout_ms,
        req.get("rebalance_timeout_ms", -1), ctx.client_id or "", ctx.client_host,
        require_known_member_id=ctx.api_version >= 4)
    if ctx.api_version < 7 and result.get("protocol_name") is None:
        result["protocol_name"] = ""  # not nullable before v7
    return Msg(throttle_time_ms=0, **result)


@handles("SYNC_GROUP", 0, 5)
async def sync_group(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    result = await broker.groups.sync(
        req.group_id, req.member_id, req.get("group_instance_id"), req.generation_id,
        req.get("protocol_type"), req.get("protocol_name"),
        {a.member_id: bytes(a.assignment) for a in req.assignments})
    code = result.get("error_code", 0)
    if code not in (0, None) and "assignment" not in result:
        result = {"error_code": code, "protocol_type": None, "protocol_name": None, "assignment": b""}
    return Msg(throttle_time_ms=0, error_code=code, protocol_type=result.get("protocol_type"),
               protocol_name=result.get("protocol_name"), assignment=result.get("assignment", b""))


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
        code = results[0]["error_code"]
    return Msg(throttle_time_ms=0, error_code=code, members=results)


@handles("LIST_GROUPS", 0, 5)
async def list_groups(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    states = {s.lower() for s in req.get("states_filter", [])}
    types = {t.lower() for t in req.get("types_filter", [])}
    groups = []
    for group_id in broker.groups.group_ids():
        state = broker.groups.state_of(group_id)
        if state is None or (states and state.value.lower() not in states) or (types and "classic" not in types):
            continue
        group = broker.groups.groups.get(group_id)
        groups.append({"group_id": group_id, "protocol_type": (group.protocol_type if group else None) or "consumer",
                       "group_state": state.value, "group_type": "classic"})
    for group_id, cgroup in sorted(broker.consumer_groups.groups.items()):
        if (states and cgroup.state.lower() not in states) or (types and "consumer" not in types):
            continue
        groups.append({"group_id": group_id, "protocol_type": "consumer", "group_state": cgroup.state,
                       "group_type": "consumer"})
    return Msg(throttle_time_ms=0, error_code=0, groups=groups)


@handles("DESCRIBE_GROUPS", 0, 5)
async def describe_groups(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    out = []
    for group_id in req.groups:
        state = broker.groups.state_of(group_id)
        group = broker.groups.groups.get(group_id)
        entry = {"error_code": 0, "group_id": group_id, "group_state": (state or GroupState.DEAD).value,
                 "protocol_type": "", "protocol_data": "", "members": [],
                 "authorized_operations": AUTHORIZED_OPERATIONS_OMITTED}
        if group is not None and group.members:
            protocol = group.protocol_name or ""
            stable = group.state == GroupState.STABLE
            entry.update(protocol_type=group.protocol_type or "", protocol_data=protocol if stable else "",
                         members=[{"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                                   "client_id": m.client_id, "client_host": m.client_host,
                                   "member_metadata": m.metadata(protocol) if stable else b"",
                                   "member_assignment": m.assignment if stable else b""}
                                  for m in group.members.values()])
        elif state is not None:
            entry["protocol_type"] = (group.protocol_type if group else None) or "consumer"
        out.append(entry)
    return Msg(throttle_time_ms=0, groups=out)


@handles("DELETE_GROUPS", 0, 2)
async def delete_groups(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    return Msg(throttle_time_ms=0, results=[{"group_id": g, "error_code": broker.groups.delete_group(g)}
                                            for g in req.groups_names])
