"""Per-topic log configuration, named and validated like Kafka 3.9's topic configs.

``LogConfig`` holds the settings the storage layer acts on as typed fields
(each field's metadata names its Kafka config). Every other Kafka topic
config is accepted, validated and kept as a string in ``other`` so that
CreateTopics/DescribeConfigs round-trip them, but nothing here acts on them.

``cleanup.policy=compact`` is accepted but compaction is not implemented:
a compacted topic simply keeps all its segments (time/size retention only
runs when the policy includes ``delete``, as in Kafka).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pykbroker.log.errors import InvalidConfigError
from pykbroker.protocol import compression as _compression

LONG_MAX: Final = 2**63 - 1
INT_MAX: Final = 2**31 - 1
CREATE_TIME: Final = "CreateTime"
LOG_APPEND_TIME: Final = "LogAppendTime"
COMPRESSION_TYPES: Final = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")


# ------------------------------------------------------------------ value parsers


def _parse_long(name: str, raw: str, lo: int = -(2**63), hi: int = LONG_MAX) -> int:
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise InvalidConfigError(f"Invalid value {raw!r} for configuration {name}: not a number") from None
    if not lo <= value <= hi:
        bound = f"at least {lo}" if hi in (LONG_MAX, INT_MAX) else f"in [{lo}, {hi}]"
        raise InvalidConfigError(f"Invalid value {value} for configuration {name}: value must be {bound}")
    return value


def _long(lo: int = -(2**63), hi: int = LONG_MAX) -> Callable[[str, str], int]:
    return lambda name, raw: _parse_long(name, raw, lo, hi)


def _int(lo: int = -(2**31), hi: int = INT_MAX) -> Callable[[str, str], int]:
    return lambda name, raw: _parse_long(name, raw, lo, hi)


def _bool(name: str, raw: str) -> bool:
    v = str(raw).strip().lower()
    if v not in ("true", "false"):
        raise InvalidConfigError(f"Invalid value {raw!r} for configuration {name}: expected true or false")
    return v == "true"


def _double(lo: float, hi: float) -> Callable[[str, str], float]:
    def parse(name: str, raw: str) -> float:
        try:
            v = float(str(raw).strip())
        except ValueError:
            raise InvalidConfigError(f"Invalid value {raw!r} for configuration {name}: not a number") from None
        if not lo <= v <= hi:
            raise InvalidConfigError(f"Invalid value {v} for configuration {name}: value must be in [{lo}, {hi}]")
        return v

    return parse


def _choice(*allowed: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        v = str(raw).strip()
        if v not in allowed:
            raise InvalidConfigError(
                f"Invalid value {raw!r} for configuration {name}: String must be one of: {', '.join(allowed)}"
            )
        return v

    return parse


def _list_of(*allowed: str) -> Callable[[str, str], tuple[str, ...]]:
    def parse(name: str, raw: str) -> tuple[str, ...]:
        items = tuple(x.strip() for x in str(raw).split(",") if x.strip())
        bad = [x for x in items if x not in allowed]
        if bad:
            raise InvalidConfigError(
                f"Invalid value {raw!r} for configuration {name}: items must be in [{', '.join(allowed)}]"
            )
        return items

    return parse


def _string(name: str, raw: str) -> str:
    return str(raw)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def _kafka(name: str, parser: Callable[[str, str], Any]) -> dict[str, Any]:
    return {"kafka": name, "parse": parser}


# Known topic configs that the log does not act on: name -> (default, parser).
OTHER_TOPIC_CONFIGS: Final[dict[str, tuple[str, Callable[[str, str], Any]]]] = {
    "compression.gzip.level": ("-1", _int(-1, 9)),
    "compression.lz4.level": ("9", _int(1, 17)),
    "compression.zstd.level": ("3", _int(-131072, 22)),
    "delete.retention.ms": ("86400000", _long(0)),
    "file.delete.delay.ms": ("60000", _long(0)),
    "follower.replication.throttled.replicas": ("", _string),
    "leader.replication.throttled.replicas": ("", _string),
    "local.retention.bytes": ("-2", _long(-2)),
    "local.retention.ms": ("-2", _long(-2)),
    "max.compaction.lag.ms": (str(LONG_MAX), _long(1)),
    "message.downconversion.enable": ("true", _bool),
    "message.format.version": ("3.0-IV1", _string),
    "min.cleanable.dirty.ratio": ("0.5", _double(0.0, 1.0)),
    "min.compaction.lag.ms": ("0", _long(0)),
    "min.insync.replicas": ("1", _int(1)),
    "preallocate": ("false", _bool),
    "remote.storage.enable": ("false", _bool),
    "remote.log.copy.disable": ("false", _bool),
    "remote.log.delete.on.disable": ("false", _bool),
    "unclean.leader.election.enable": ("false", _bool),
}


@dataclass(frozen=True, slots=True)
class LogConfig:
    """Effective configuration of one partition log (broker defaults + topic overrides)."""

    segment_bytes: int = field(default=1 << 30, metadata=_kafka("segment.bytes", _int(14)))
    segment_ms: int = field(default=7 * 24 * 3600 * 1000, metadata=_kafka("segment.ms", _long(1)))
    segment_jitter_ms: int = field(default=0, metadata=_kafka("segment.jitter.ms", _long(0)))
    segment_index_bytes: int = field(default=10 * 1024 * 1024, metadata=_kafka("segment.index.bytes", _int(4)))
    index_interval_bytes: int = field(default=4096, metadata=_kafka("index.interval.bytes", _int(0)))
    retention_ms: int = field(default=7 * 24 * 3600 * 1000, metadata=_kafka("retention.ms", _long(-1)))
    retention_bytes: int = field(default=-1, metadata=_kafka("retention.bytes", _long()))
    max_message_bytes: int = field(default=1048588, metadata=_kafka("max.message.bytes", _int(0)))
    message_timestamp_type: str = field(
        default=CREATE_TIME, metadata=_kafka("message.timestamp.type", _choice(CREATE_TIME, LOG_APPEND_TIME))
    )
    message_timestamp_before_max_ms: int = field(
        default=LONG_MAX, metadata=_kafka("message.timestamp.before.max.ms", _long(0))
    )
    message_timestamp_after_max_ms: int = field(
        default=LONG_MAX, metadata=_kafka("message.timestamp.after.max.ms", _long(0))
    )
    message_timestamp_difference_max_ms: int = field(
        default=LONG_MAX, metadata=_kafka("message.timestamp.difference.max.ms", _long(0))
    )
    flush_messages: int = field(default=LONG_MAX, metadata=_kafka("flush.messages", _long(1)))
    flush_ms: int = field(default=LONG_MAX, metadata=_kafka("flush.ms", _long(0)))
    cleanup_policy: tuple[str, ...] = field(
        default=("delete",), metadata=_kafka("cleanup.policy", _list_of("delete", "compact"))
    )
    compression_type: str = field(default="producer", metadata=_kafka("compression.type", _choice(*COMPRESSION_TYPES)))
    other: Mapping[str, str] = field(default_factory=dict)

    # ---------------------------------------------------------------- derived

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == LOG_APPEND_TIME

    @property
    def delete_enabled(self) -> bool:
        return "delete" in self.cleanup_policy

    @property
    def compact_enabled(self) -> bool:
        return "compact" in self.cleanup_policy

    @property
    def target_compression(self) -> int | None:
        """Codec the broker must store, or None to keep the producer's ("producer")."""
        if self.compression_type == "producer":
            return None
        return _compression.CODEC_BY_CONFIG_NAME[self.compression_type]

    @property
    def timestamp_before_max_ms(self) -> int:
        """Kafka 3.6+: the deprecated difference config applies when before.max is unset."""
        if self.message_timestamp_before_max_ms == LONG_MAX:
            return self.message_timestamp_difference_max_ms
        return self.message_timestamp_before_max_ms

    @property
    def timestamp_after_max_ms(self) -> int:
        if self.message_timestamp_after_max_ms == LONG_MAX:
            return self.message_timestamp_difference_max_ms
        return self.message_timestamp_after_max_ms

    # ------------------------------------------------------------ conversions

    @classmethod
    def kafka_names(cls) -> dict[str, str]:
        """Kafka config name -> field name for the typed fields."""
        return {f.metadata["kafka"]: f.name for f in dataclasses.fields(cls) if "kafka" in f.metadata}

    @classmethod
    def from_kafka_configs(
        cls, configs: Mapping[str, str | None], defaults: LogConfig | None = None
    ) -> LogConfig:
        """Overlay Kafka-named topic configs on ``defaults``; raise InvalidConfigError naming a bad key.

        ``None`` values (a CreateTopics config sent as null) mean "use the default".
        """
        base = defaults if defaults is not None else cls()
        by_kafka = {f.metadata["kafka"]: f for f in dataclasses.fields(cls) if "kafka" in f.metadata}
        changes: dict[str, Any] = {}
        other = dict(base.other)
        for name, raw in configs.items():
            if raw is None:
                continue
            f = by_kafka.get(name)
            if f is not None:
                changes[f.name] = f.metadata["parse"](name, raw)
            elif name in OTHER_TOPIC_CONFIGS:
                OTHER_TOPIC_CONFIGS[name][1](name, raw)
                other[name] = str(raw).strip()
            else:
                raise InvalidConfigError(f"Unknown topic config name: {name}")
        changes["other"] = other
        return dataclasses.replace(base, **changes)

    def to_kafka_configs(self) -> dict[str, str]:
        """Every known topic config name -> its effective value as a string (for DescribeConfigs)."""
        out = {
            f.metadata["kafka"]: _fmt(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if "kafka" in f.metadata
        }
        for name, (default, _) in OTHER_TOPIC_CONFIGS.items():
            out[name] = self.other.get(name, default)
        return dict(sorted(out.items()))

    @classmethod
    def from_broker_configs(cls, props: Mapping[str, str]) -> LogConfig:
        """Topic defaults from broker properties (``log.retention.hours``, ``log.segment.bytes``...)."""
        topic: dict[str, str] = {}

        def time_ms(ms_key: str, *fallbacks: tuple[str, int]) -> str | None:
            if props.get(ms_key) is not None:
                return props[ms_key]
            for key, factor in fallbacks:
                if props.get(key) is not None:
                    return str(_parse_long(key, props[key]) * factor)
            return None

        retention = time_ms("log.retention.ms", ("log.retention.minutes", 60_000), ("log.retention.hours", 3_600_000))
        if retention is not None:
            topic["retention.ms"] = retention
        roll = time_ms("log.roll.ms", ("log.roll.hours", 3_600_000))
        if roll is not None:
            topic["segment.ms"] = roll
        jitter = time_ms("log.roll.jitter.ms", ("log.roll.jitter.hours", 3_600_000))
        if jitter is not None:
            topic["segment.jitter.ms"] = jitter
        for broker_key, topic_key in BROKER_TO_TOPIC_CONFIG.items():
            if props.get(broker_key) is not None:
                topic[topic_key] = props[broker_key]
        try:
            return cls.from_kafka_configs(topic)
        except InvalidConfigError as exc:
            reverse = {v: k for k, v in BROKER_TO_TOPIC_CONFIG.items()}
            msg = str(exc)
            for topic_key, broker_key in reverse.items():
                msg = msg.replace(f"configuration {topic_key}:", f"configuration {broker_key}:")
            raise InvalidConfigError(msg) from None


BROKER_TO_TOPIC_CONFIG: Final = {
    "log.segment.bytes": "segment.bytes",
    "log.index.size.max.bytes": "segment.index.bytes",
    "log.index.interval.bytes": "index.interval.bytes",
    "log.retention.bytes": "retention.bytes",
    "message.max.bytes": "max.message.bytes",
    "log.message.timestamp.type": "message.timestamp.type",
    "log.message.timestamp.before.max.ms": "message.timestamp.before.max.ms",
    "log.message.timestamp.after.max.ms": "message.timestamp.after.max.ms",
    "log.message.timestamp.difference.max.ms": "message.timestamp.difference.max.ms",
    "log.flush.interval.messages": "flush.messages",
    "log.flush.interval.ms": "flush.ms",
    "log.cleanup.policy": "cleanup.policy",
    "compression.type": "compression.type",
    "compression.gzip.level": "compression.gzip.level",
    "compression.lz4.level": "compression.lz4.level",
    "compression.zstd.level": "compression.zstd.level",
    "log.cleaner.delete.retention.ms": "delete.retention.ms",
    "log.cleaner.min.compaction.lag.ms": "min.compaction.lag.ms",
    "log.cleaner.max.compaction.lag.ms": "max.compaction.lag.ms",
    "log.cleaner.min.cleanable.ratio": "min.cleanable.dirty.ratio",
    "log.segment.delete.delay.ms": "file.delete.delay.ms",
    "log.message.downconversion.enable": "message.downconversion.enable",
    "log.preallocate": "preallocate",
    "min.insync.replicas": "min.insync.replicas",
    "unclean.leader.election.enable": "unclean.leader.election.enable",
}
