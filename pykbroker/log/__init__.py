"""On-disk partition logs: segments, indexes, recovery, retention, compaction (cleaner) and the log manager."""

from pykbroker.log.config import LogConfig
from pykbroker.log.errors import (
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidTimestampError,
    InvalidTopicError,
    KafkaStorageError,
    LogError,
    MessageTooLargeError,
    OffsetOutOfRangeError,
    RecordBatchTooLargeError,
    TopicExistsError,
    UnknownTopicOrPartitionError,
)
from pykbroker.log.manager import LogManager, TopicInfo
from pykbroker.log.partition_log import AppendInfo, PartitionLog, ReadResult
from pykbroker.protocol.records import CorruptRecordError, InvalidRecordError, RecordError

__all__ = [
    "AppendInfo",
    "CorruptRecordError",
    "InvalidConfigError",
    "InvalidPartitionsError",
    "InvalidRecordError",
    "InvalidTimestampError",
    "InvalidTopicError",
    "KafkaStorageError",
    "LogConfig",
    "LogError",
    "LogManager",
    "MessageTooLargeError",
    "OffsetOutOfRangeError",
    "PartitionLog",
    "ReadResult",
    "RecordBatchTooLargeError",
    "RecordError",
    "TopicExistsError",
    "TopicInfo",
    "UnknownTopicOrPartitionError",
]
