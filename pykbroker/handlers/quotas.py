"""DescribeClientQuotas and AlterClientQuotas (KIP-546): the quotas of users, client ids and IPs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from ..log.errors import KafkaStorageError
from ..protocol.errors import ErrorCode
from ..protocol.primitives import Msg
from ..quotas.entities import IP, QuotaEntity, QuotaError, QuotaFilter, is_address
from ..quotas.store import Alteration
from .registry import RequestContext, handles

if TYPE_CHECKING:
    from ..broker import Broker


def _entity(entity: QuotaEntity) -> list[dict[str, Any]]:
    return [{"entity_type": t, "entity_name": n} for t, n in entity]


@handles("DESCRIBE_CLIENT_QUOTAS", 0, 1)
async def describe_client_quotas(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    try:
        quota_filter = QuotaFilter.from_components(
            ((c.entity_type, c.match_type, c.match) for c in req.components), req.strict)
    except QuotaError as e:  # Kafka answers a bad filter with the error and null entries
        return Msg(throttle_time_ms=0, error_code=e.code, error_message=str(e), entries=None)
    entries = [{"entity": _entity(entity), "values": [{"key": k, "value": v} for k, v in sorted(values.items())]}
               for entity, values in broker.client_quotas.store.describe(quota_filter)]
    return Msg(throttle_time_ms=0, error_code=0, error_message=None, entries=entries)


async def _resolvable(alterations: list[Alteration]) -> frozenset[str]:
    """The host names of ip entities that resolve: Kafka accepts an ip entity naming a host
    (InetAddress.getByName); trio looks it up in a worker thread."""
    hosts = {n for a in alterations for t, n in a.pairs if t == IP and n and not is_address(n)}
    found = set()
    for host in hosts:
        try:
            await trio.socket.getaddrinfo(host, None)
        except OSError:
            continue
        found.add(host)
    return frozenset(found)


@handles("ALTER_CLIENT_QUOTAS", 0, 1)
async def alter_client_quotas(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    alterations = [Alteration(tuple((e.entity_type, e.entity_name) for e in entry.entity),
                              tuple((op.key, None if op.remove else op.value) for op in entry.ops))
                   for entry in req.entries]
    try:
        results = await broker.alter_client_quotas(alterations, req.validate_only, await _resolvable(alterations))
    except KafkaStorageError as e:
        return Msg(throttle_time_ms=0, entries=[
            {"error_code": ErrorCode.KAFKA_STORAGE_ERROR, "error_message": str(e), "entity": _entity(a.pairs)}
            for a in alterations])
    return Msg(throttle_time_ms=0, entries=[
        {"error_code": r.code, "error_message": r.message, "entity": _entity(r.pairs)} for r in results])
