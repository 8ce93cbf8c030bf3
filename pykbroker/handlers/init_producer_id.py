"""InitProducerId: producer ids for idempotent producers (transactions are not served yet)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..protocol.errors import ErrorCode
from ..protocol.primitives import Msg
from .registry import RequestContext, handles

if TYPE_CHECKING:
    from ..broker import Broker

log = logging.getLogger("pykbroker.producer")


@handles("INIT_PRODUCER_ID", 0, 5)
async def init_producer_id(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    if req.transactional_id is not None:
        log.warning("client %s asked for transactional id %r: transactions are not supported yet",
                    ctx.client_id, req.transactional_id)
        return Msg(throttle_time_ms=0, error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                   producer_id=-1, producer_epoch=-1)
    producer_id, epoch = req.get("producer_id", -1), req.get("producer_epoch", -1)
    if producer_id >= 0 and 0 <= epoch < 32766:
        # KIP-360: an idempotent producer that lost track of its sequence bumps its epoch.
        return Msg(throttle_time_ms=0, error_code=0, producer_id=producer_id, producer_epoch=epoch + 1)
    return Msg(throttle_time_ms=0, error_code=0, producer_id=broker.next_producer_id(), producer_epoch=0)
