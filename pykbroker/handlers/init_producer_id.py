"""InitProducerId: producer ids for idempotent and transactional producers.

Without a transactional id Kafka always issues a new producer id with epoch 0, whatever
producer id and epoch the request names (TransactionCoordinator.handleInitProducerId): the
epoch bump of KIP-360 applies to transactional producers only, which the transaction
coordinator serves.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..log.errors import KafkaStorageError
from ..protocol.errors import ErrorCode
from ..protocol.primitives import Msg
from .registry import RequestContext, handles

if TYPE_CHECKING:
    from ..broker import Broker

log = logging.getLogger("pykbroker.producer")


@handles("INIT_PRODUCER_ID", 0, 5)
async def init_producer_id(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    if req.transactional_id == "":
        return Msg(throttle_time_ms=0, error_code=ErrorCode.INVALID_REQUEST, producer_id=-1, producer_epoch=-1)
    try:
        if req.transactional_id is not None:
            await broker.transaction_state_ready()
            r = await broker.txns.init_producer_id(req.transactional_id, req.transaction_timeout_ms,
                                                   req.get("producer_id", -1), req.get("producer_epoch", -1))
            code = await broker.replicated_txn_write(req.transactional_id, r.error)
            if code:
                return Msg(throttle_time_ms=0, error_code=code, producer_id=-1, producer_epoch=-1)
            return Msg(throttle_time_ms=0, error_code=r.error, producer_id=r.producer_id, producer_epoch=r.producer_epoch)
        producer_id = await broker.next_producer_id()
    except KafkaStorageError as e:
        # Kafka answers so while it has no producer-id block; producers retry it.
        log.error("InitProducerId from %s: %s", ctx.client_id, e)
        return Msg(throttle_time_ms=0, error_code=ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
                   producer_id=-1, producer_epoch=-1)
    return Msg(throttle_time_ms=0, error_code=0, producer_id=producer_id, producer_epoch=0)
