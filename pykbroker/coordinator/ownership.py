"""Which __consumer_offsets partitions this coordinator serves, and how a failed write is answered.

A group lives on partition `partition_for(group_id)`. The coordinator answers for it only once
that partition is loaded; while loading, COORDINATOR_LOAD_IN_PROGRESS; when not served at all,
NOT_COORDINATOR (the client looks the coordinator up again). As Kafka.
"""

from __future__ import annotations

import enum
import logging

import trio

from ..log.errors import LogError
from ..protocol.errors import ErrorCode

log = logging.getLogger("pykbroker.group")


class Load(enum.Enum):
    LOADING = "loading"
    LOADED = "loaded"


def java_string_hash(text: str) -> int:
    """Java's String.hashCode, so groups land on the partition Kafka would pick."""
    h = 0
    for unit in text.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(group_id: str, partitions: int) -> int:
    """Kafka's GroupMetadataManager.partitionFor."""
    return (java_string_hash(group_id) & 0x7FFFFFFF) % partitions


def availability(state: Load | None) -> ErrorCode:
    if state is Load.LOADED:
        return ErrorCode.NONE
    if state is Load.LOADING:
        return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    return ErrorCode.NOT_COORDINATOR


_APPEND_ERRORS = {
    # Kafka's CoordinatorOperationExceptionHelper / appendGroupMetadataErrorToResponseError.
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_ENOUGH_REPLICAS: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.REQUEST_TIMED_OUT: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_LEADER_OR_FOLLOWER: ErrorCode.NOT_COORDINATOR,
    ErrorCode.KAFKA_STORAGE_ERROR: ErrorCode.NOT_COORDINATOR,
    ErrorCode.MESSAGE_TOO_LARGE: ErrorCode.UNKNOWN_SERVER_ERROR,
    ErrorCode.RECORD_LIST_TOO_LARGE: ErrorCode.UNKNOWN_SERVER_ERROR,
    ErrorCode.INVALID_FETCH_SIZE: ErrorCode.UNKNOWN_SERVER_ERROR,
}


def append_error(exc: BaseException) -> ErrorCode:
    """The error a client gets when the coordinator's write to __consumer_offsets failed."""
    if isinstance(exc, LogError):
        try:
            code = ErrorCode(exc.error_code)
        except ValueError:
            code = ErrorCode.UNKNOWN_SERVER_ERROR
    elif isinstance(exc, (TimeoutError, trio.TooSlowError)):
        code = ErrorCode.REQUEST_TIMED_OUT
    elif isinstance(exc, OSError):
        code = ErrorCode.KAFKA_STORAGE_ERROR
    else:
        log.error("unexpected error writing to __consumer_offsets", exc_info=exc)
        code = ErrorCode.UNKNOWN_SERVER_ERROR
    return _APPEND_ERRORS.get(code, code)
