"""Errors raised by the storage layer, each carrying the Kafka error code a handler should return.

Record validation errors (``CorruptRecordError``/``InvalidRecordError``) come
from ``pykbroker.protocol.records`` and are re-exported by this package.
"""

from __future__ import annotations


class LogError(Exception):
    """Base class of storage errors."""

    error_code: int = -1  # UNKNOWN_SERVER_ERROR


class OffsetOutOfRangeError(LogError):
    """Fetch/ListOffsets/DeleteRecords offset outside [log start, log end]."""

    error_code = 1


class MessageTooLargeError(LogError):
    """A batch is larger than the topic's ``max.message.bytes``."""

    error_code = 10


class RecordBatchTooLargeError(LogError):
    """A produce records blob is larger than ``segment.bytes`` (RECORD_LIST_TOO_LARGE)."""

    error_code = 18


class InvalidTimestampError(LogError):
    """A CreateTime timestamp outside ``message.timestamp.{before,after}.max.ms``."""

    error_code = 32


class KafkaStorageError(LogError):
    """Disk I/O failed; the log stays usable only if nothing was written."""

    error_code = 56


class InvalidConfigError(LogError, ValueError):
    """A topic/broker log config has a bad value or an unknown name."""

    error_code = 40


class InvalidTopicError(LogError, ValueError):
    """Illegal topic name."""

    error_code = 17


class TopicExistsError(LogError):
    error_code = 36


class UnknownTopicOrPartitionError(LogError, KeyError):
    error_code = 3


class NotLeaderError(LogError):
    """Cluster mode: a write reached a replica that does not lead the partition (NOT_LEADER_OR_FOLLOWER).
    Only a leader appends what clients and coordinators send; followers only copy their leader."""


class InvalidPartitionsError(LogError, ValueError):
    error_code = 37


class StartupError(LogError, ValueError):
    """The data directory cannot be served as it is; the CLI prints the message and exits 2."""

    error_code = 56


class UnreadableMetadataError(StartupError):
    """A metadata file (topic json, partition.metadata, meta.properties...) cannot be read.

    Start-up stops with this rather than guess: guessing wrong would delete or hide data.
    The message names the file and says what to do.
    """

    error_code = 56  # KAFKA_STORAGE_ERROR if it ever reaches a client
