"""ApiVersions: derived from the handler registry, so only what is served is advertised."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..protocol.errors import ErrorCode
from ..protocol.primitives import Msg
from .features import FINALIZED_EPOCH, finalized_features, supported_features
from .registry import HANDLERS, RequestContext, handles

if TYPE_CHECKING:
    from ..broker import Broker

#: KIP-511: what a v3+ client may call itself (Kafka's ApiVersionsRequest.SOFTWARE_NAME_VERSION_PATTERN).
SOFTWARE_NAME_VERSION = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?")


@handles("API_VERSIONS", 0, 5)
async def api_versions(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    code = _check(broker, req, ctx.api_version)
    if code:  # Kafka's ApiVersionsRequest.getErrorResponse: the code alone, no versions or features
        return Msg(error_code=code, api_keys=[], throttle_time_ms=0)
    keys = [{"api_key": h.api_key, "min_version": h.min_version, "max_version": h.max_version}
            for h in sorted(HANDLERS.values(), key=lambda h: h.api_key)]
    return Msg(error_code=0, api_keys=keys, throttle_time_ms=0,
               supported_features=supported_features(ctx.api_version),
               finalized_features_epoch=FINALIZED_EPOCH, finalized_features=finalized_features())


def _check(broker: "Broker", req: Msg, version: int) -> ErrorCode:
    """Kafka's KafkaApis.handleApiVersionsRequest checks, in its order."""
    if version >= 5 and (req.cluster_id is None) != (req.node_id == -1):
        return ErrorCode.INVALID_REQUEST  # cluster id and node id come together or not at all
    if version >= 3 and not all(SOFTWARE_NAME_VERSION.fullmatch(req[f] or "")
                                for f in ("client_software_name", "client_software_version")):
        return ErrorCode.INVALID_REQUEST
    if version >= 5 and req.cluster_id is not None and (req.cluster_id, req.node_id) != (broker.cluster_id,
                                                                                         broker.node_id):
        # KIP-1242: the client's metadata names another cluster or broker behind this address.
        return ErrorCode.REBOOTSTRAP_REQUIRED
    return ErrorCode.NONE
