"""ApiVersions: derived from the handler registry, so only what is served is advertised."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..protocol.primitives import Msg
from .features import FINALIZED_EPOCH, finalized_features, supported_features
from .registry import HANDLERS, RequestContext, handles

if TYPE_CHECKING:
    from ..broker import Broker


# v5 (KIP-1242: the client's cluster_id/node_id checked, REBOOTSTRAP_REQUIRED) is not served.
@handles("API_VERSIONS", 0, 4)
async def api_versions(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    keys = [{"api_key": h.api_key, "min_version": h.min_version, "max_version": h.max_version}
            for h in sorted(HANDLERS.values(), key=lambda h: h.api_key)]
    return Msg(error_code=0, api_keys=keys, throttle_time_ms=0,
               supported_features=supported_features(ctx.api_version),
               finalized_features_epoch=FINALIZED_EPOCH, finalized_features=finalized_features())
