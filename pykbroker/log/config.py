"""Per-topic log configuration, named and validated like Kafka 3.9/4.x's topic configs.

Names, types, defaults and ranges come from ``pykbroker/kafka_configs.json`` (generated from
Kafka's own ConfigDefs), so CreateTopics, IncrementalAlterConfigs, broker defaults and start-up
all check a value with the same rule Kafka does.

``LogConfig`` holds the settings the storage layer acts on as typed fields
(each field's metadata names its Kafka config). Every other Kafka topic
config is accepted, validated and kept as a string in ``other`` so that
CreateTopics/DescribeConfigs round-trip them, but nothing here acts on them.

``cleanup.policy=compact`` topics are compacted by the log cleaner (``log/cleaner.py``) under
``min.cleanable.dirty.ratio``, ``min.compaction.lag.ms``, ``max.compaction.lag.ms`` and
``delete.retention.ms``; time/size retention only runs when the policy includes ``delete``, as
in Kafka.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
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


#: Kafka's integer config types and their widths (SHORT, INT, LONG): the bounds without a validator.
TYPE_WIDTHS: Final = {"SHORT": 2**15, "INT": 2**31, "LONG": 2**63}


@cache
def kafka_topic_configs() -> dict[str, dict[str, Any]]:
    """Every topic config Kafka 3.9/4.x defines, with type, default and validator (tools/kafka_configs)."""
    data = json.loads((Path(__file__).parents[1] / "kafka_configs.json").read_text(encoding="utf-8"))
    return data["topic"]


def _listed(valid: str) -> tuple[str, ...]:
    """Kafka prints a ValidString/ValidList as "[a, b, c]"."""
    return tuple(x.strip() for x in valid.strip("[]").split(",") if x.strip())


def _gzip_level(name: str, raw: str) -> int:
    """Kafka's lambda validator for compression.gzip.level: 1..9, or -1 for zlib's default."""
    level = _parse_long(name, raw, -1, 9)
    if level == 0:
        raise InvalidConfigError(f"Invalid value 0 for configuration {name}: value must be in [1, 9] or -1")
    return level


def _segment_bytes(name: str, raw: str) -> int:
    """Kafka 4's 1 MiB minimum, with the way around it named (tests want small segments)."""
    try:
        return _from_table(name)(name, raw)
    except InvalidConfigError as exc:
        raise InvalidConfigError(f"{exc} (internal.segment.bytes sets a smaller size, as in Kafka 4)") from None


#: Validators Kafka writes as code, not as a range or a list; and segment.bytes' hint.
_SPECIAL_PARSERS: Final[dict[str, Callable[[str, str], Any]]] = {
    "compression.gzip.level": _gzip_level,
    "segment.bytes": _segment_bytes,
}


def parser_for(name: str) -> Callable[[str, str], Any]:
    """The parser that checks a value of topic config `name` as Kafka's ConfigDef does."""
    return _SPECIAL_PARSERS.get(name) or _from_table(name)


def _from_table(name: str) -> Callable[[str, str], Any]:
    row = kafka_topic_configs()[name]
    kind, validator = row["type"], row.get("validator")
    if kind == "BOOLEAN":
        return _bool
    if kind in TYPE_WIDTHS:
        width = TYPE_WIDTHS[kind]
        return _long(row.get("min", -width), row.get("max", width - 1))
    if kind == "DOUBLE":
        return _double(float(row.get("min", float("-inf"))), float(row.get("max", float("inf"))))
    if validator in ("ValidString", "MetadataVersionValidator"):
        return _choice(*_listed(row["valid"]))
    if kind == "LIST" and validator == "ValidList":
        return _list_of(*_listed(row["valid"]))
    return _string


def upgrade_stored_configs(configs: Mapping[str, str]) -> dict[str, str]:
    """Topic configs saved by an earlier pykbroker, valid under Kafka 3.9's rules, under 4.x's.

    Kafka 3.9 allowed segment.bytes down to 14; Kafka 4 wants 1 MiB and has internal.segment.bytes
    for smaller segments. A topic keeps the segment size it was created with.
    """
    out = dict(configs)
    raw = out.get("segment.bytes")
    if raw is not None and "internal.segment.bytes" not in out:
        try:
            small = 14 <= int(raw) < kafka_topic_configs()["segment.bytes"]["min"]
        except ValueError:
            small = False
        if small:
            out["internal.segment.bytes"] = out.pop("segment.bytes")
    return out


def _kafka_default(name: str) -> str:
    default = kafka_topic_configs()[name].get("default")
    return "" if default is None else _fmt(default) if isinstance(default, bool) else str(default)


def _kafka(name: str) -> dict[str, Any]:
    return {"kafka": name, "parse": parser_for(name)}


@dataclass(frozen=True, slots=True)
class LogConfig:
    """Effective configuration of one partition log (broker defaults + topic overrides)."""

    segment_bytes: int = field(default=1 << 30, metadata=_kafka("segment.bytes"))
    segment_ms: int = field(default=7 * 24 * 3600 * 1000, metadata=_kafka("segment.ms"))
    segment_jitter_ms: int = field(default=0, metadata=_kafka("segment.jitter.ms"))
    segment_index_bytes: int = field(default=10 * 1024 * 1024, metadata=_kafka("segment.index.bytes"))
    index_interval_bytes: int = field(default=4096, metadata=_kafka("index.interval.bytes"))
    retention_ms: int = field(default=7 * 24 * 3600 * 1000, metadata=_kafka("retention.ms"))
    retention_bytes: int = field(default=-1, metadata=_kafka("retention.bytes"))
    max_message_bytes: int = field(default=1048588, metadata=_kafka("max.message.bytes"))
    message_timestamp_type: str = field(
        default=CREATE_TIME, metadata=_kafka("message.timestamp.type")
    )
    message_timestamp_before_max_ms: int = field(
        default=LONG_MAX, metadata=_kafka("message.timestamp.before.max.ms")
    )
    message_timestamp_after_max_ms: int = field(
        default=LONG_MAX, metadata=_kafka("message.timestamp.after.max.ms")
    )
    message_timestamp_difference_max_ms: int = field(
        default=LONG_MAX, metadata=_kafka("message.timestamp.difference.max.ms")
    )
    flush_messages: int = field(default=LONG_MAX, metadata=_kafka("flush.messages"))
    flush_ms: int = field(default=LONG_MAX, metadata=_kafka("flush.ms"))
    cleanup_policy: tuple[str, ...] = field(
        default=("delete",), metadata=_kafka("cleanup.policy")
    )
    compression_type: str = field(default="producer", metadata=_kafka("compression.type"))
    delete_retention_ms: int = field(default=86_400_000, metadata=_kafka("delete.retention.ms"))
    min_compaction_lag_ms: int = field(default=0, metadata=_kafka("min.compaction.lag.ms"))
    max_compaction_lag_ms: int = field(default=LONG_MAX, metadata=_kafka("max.compaction.lag.ms"))
    min_cleanable_dirty_ratio: float = field(default=0.5, metadata=_kafka("min.cleanable.dirty.ratio"))
    file_delete_delay_ms: int = field(default=60_000, metadata=_kafka("file.delete.delay.ms"))
    #: Kafka 4's internal override that lets tests roll segments below segment.bytes' 1 MiB minimum.
    internal_segment_bytes: int | None = field(
        default=None, metadata={"kafka": "internal.segment.bytes", "parse": _long(14, INT_MAX), "internal": True}
    )
    other: Mapping[str, str] = field(default_factory=dict)

    # ---------------------------------------------------------------- derived

    @property
    def segment_size(self) -> int:
        """The size at which a segment rolls: internal.segment.bytes when set, as Kafka 4 has it."""
        return self.internal_segment_bytes if self.internal_segment_bytes is not None else self.segment_bytes

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
                parser_for(name)(name, raw)
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
            if "kafka" in f.metadata and not f.metadata.get("internal")
        }
        for name in OTHER_TOPIC_CONFIGS:
            out[name] = self.other.get(name, _kafka_default(name))
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


#: Broker configs that set a topic config's default, most specific first (Kafka's TopicConfigSynonyms).
TOPIC_CONFIG_SYNONYMS: Final[dict[str, tuple[str, ...]]] = {
    "retention.ms": ("log.retention.ms", "log.retention.minutes", "log.retention.hours"),
    "segment.ms": ("log.roll.ms", "log.roll.hours"),
    "segment.jitter.ms": ("log.roll.jitter.ms", "log.roll.jitter.hours"),
}


#: Kafka topic configs the log does not act on: accepted, validated, kept and described as strings.
OTHER_TOPIC_CONFIGS: Final = tuple(sorted(set(kafka_topic_configs()) - set(LogConfig.kafka_names())))


def topic_config_synonyms(name: str) -> tuple[str, ...]:
    """The broker configs behind topic config `name`'s default (none for topic-only configs)."""
    if name in TOPIC_CONFIG_SYNONYMS:
        return TOPIC_CONFIG_SYNONYMS[name]
    return tuple(b for b, t in BROKER_TO_TOPIC_CONFIG.items() if t == name)


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
