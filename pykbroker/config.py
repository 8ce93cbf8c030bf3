"""Broker settings under Kafka's own config names, typed and validated once at start-up.

The table below is the whole contract: a Kafka user's `server.properties` keys, their types,
defaults and meaning. Defaults follow Kafka 3.9 except where a local dev broker is better served
(said in the row's note).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from functools import cache
from pathlib import Path
from typing import Any, Callable, Mapping

from .log.config import BROKER_TO_TOPIC_CONFIG, TYPE_WIDTHS, LogConfig
from .log.errors import InvalidConfigError
from .server.quotas import parse_overrides


class ConfigError(ValueError):
    """An unknown key or a value of the wrong type: names the key and what it accepts."""


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise ValueError("expected true or false")


def _int(text: str) -> int:
    return int(text.strip())


def _str(text: str) -> str:
    return text.strip()


def _float(text: str) -> float:
    return float(text.strip())


def _replica_selector(text: str) -> str:
    from .cluster.replica_selector import RACK_AWARE, SELECTORS
    name = text.strip()
    if name not in SELECTORS:
        raise ValueError(f"expected {RACK_AWARE} (the one selector served) or nothing")
    return name


@dataclasses.dataclass(frozen=True)
class Setting:
    key: str
    parse: Callable[[str], Any]
    default: Any
    doc: str
    minimum: int | None = None

    @property
    def type_name(self) -> str:
        return {_bool: "boolean", _int: "integer", _str: "string", _float: "number", _replica_selector: "string"}[self.parse]


SETTINGS: tuple[Setting, ...] = (
    Setting("node.id", _int, 1, "This broker's id (Kafka's broker.id / node.id).", 0),
    Setting("listeners", _str, "PLAINTEXT://127.0.0.1:9092", "Where to listen: PLAINTEXT://HOST:PORT (port 0 picks a free port)."),
    Setting("advertised.listeners", _str, "", "Address clients are told to connect to; defaults to the bound listener."),
    Setting("log.dirs", _str, "./pykbroker-data", "Directory holding the partition logs."),
    Setting("cluster.id", _str, "", "Cluster id reported in Metadata; generated and persisted in log.dirs when empty."),
    Setting("num.partitions", _int, 1, "Partitions of an auto-created topic.", 1),
    Setting("default.replication.factor", _int, 1, "Replication factor of an auto-created topic (1 on a single node).", 1),
    Setting("auto.create.topics.enable", _bool, True, "Create a topic on first Metadata/Produce request that names it."),
    Setting("delete.topic.enable", _bool, True, "Allow DeleteTopics."),
    Setting("socket.request.max.bytes", _int, 104857600, "Largest request frame accepted; checked before reading the body.", 1),
    Setting("fetch.max.bytes", _int, 57671680, "Most record bytes one Fetch response carries, whatever the request "
            "asks (Fetch v0-2 ask for no limit, and their records are down-converted in memory).", 1024),
    Setting("max.incremental.fetch.session.cache.slots", _int, 1000, "Fetch sessions (KIP-227) kept at once; "
            "0 turns incremental fetches off.", 0),
    Setting("max.request.partition.size.limit", _int, 2000, "Most partitions one DescribeTopicPartitions "
            "response lists (the rest by its cursor).", 1),
    Setting("log.retention.check.interval.ms", _int, 300000, "How often retention runs.", 1),
    Setting("group.initial.rebalance.delay.ms", _int, 200, "Wait for more members before the first rebalance of a new group. "
            "Kafka's default is 3000 ms; 200 ms here: a lone consumer gets its assignment at once, and "
            "consumers started together still land in one rebalance.", 0),
    Setting("group.consumer.session.timeout.ms", _int, 45000, "Session timeout of consumer-protocol (KIP-848) members.", 1),
    Setting("group.consumer.heartbeat.interval.ms", _int, 1000, "Heartbeat interval told to KIP-848 members "
            "(Kafka: 5000; 1000 here so reassignments settle quickly on a laptop).", 1),
    Setting("transactional.id.expiration.ms", _int, 604800000, "Forget a transactional id whose producer has been idle this long.", 1),
    Setting("producer.id.expiration.ms", _int, 86400000, "Forget idle idempotent producer state after this.", 1),
    Setting("producer.id.expiration.check.interval.ms", _int, 600000, "How often idle producer state is looked for.", 1),
    Setting("transaction.state.log.num.partitions", _int, 1, "Partitions of __transaction_state "
            "(Kafka: 50; one is plenty on one node).", 1),
    Setting("transaction.state.log.replication.factor", _int, 3, "Replication factor of __transaction_state in "
            "a cluster: as Kafka, it is not created (FindCoordinator answers COORDINATOR_NOT_AVAILABLE) until this "
            "many brokers are alive. A single node ignores it.", 1),
    Setting("transaction.max.timeout.ms", _int, 900000, "Largest transaction.timeout.ms a producer may ask for.", 1),
    Setting("transaction.abort.timed.out.transaction.cleanup.interval.ms", _int, 10000,
            "How often transactions open past their timeout are looked for (and aborted).", 1),
    Setting("log.cleaner.enable", _bool, True, "Run the log cleaner (compaction of cleanup.policy=compact topics, "
            "__consumer_offsets and __transaction_state among them)."),
    Setting("log.cleaner.threads", _int, 1, "Partitions cleaned at once (each in worker threads); 0 cleans none.", 0),
    Setting("log.cleaner.backoff.ms", _int, 15000, "Sleep of a cleaner with nothing to clean.", 0),
    Setting("log.cleaner.dedupe.buffer.size", _int, 134217728, "Memory for the cleaners' key maps, split across "
            "log.cleaner.threads (24 bytes a key, as Kafka counts: it bounds the keys one round covers).", 1),
    Setting("log.cleaner.io.buffer.size", _int, 524288, "Read and write buffer of a cleaner.", 0),
    Setting("log.cleaner.io.max.bytes.per.second", _float, 1.7976931348623157e308,
            "Bytes a second all cleaners together may read and write."),
    Setting("offsets.topic.segment.bytes", _int, 104857600, "segment.bytes of __consumer_offsets when created "
            "(below 1 MiB it is set as internal.segment.bytes).", 1),
    Setting("transaction.state.log.segment.bytes", _int, 104857600, "segment.bytes of __transaction_state when "
            "created (below 1 MiB it is set as internal.segment.bytes).", 1),
    Setting("offsets.topic.num.partitions", _int, 1, "Partitions of __consumer_offsets (Kafka: 50; one is plenty on one node).", 1),
    Setting("offsets.topic.replication.factor", _int, 3, "Replication factor of __consumer_offsets in a cluster: "
            "as Kafka, it is not created (FindCoordinator answers COORDINATOR_NOT_AVAILABLE) until this many "
            "brokers are alive.", 1),
    Setting("offsets.commit.timeout.ms", _int, 5000, "How long a coordinator write waits for the ISR of its "
            "__consumer_offsets partition (cluster mode) before the commit fails.", 1),
    Setting("offsets.retention.minutes", _int, 10080, "Expire committed offsets of empty groups after this.", 1),
    Setting("group.min.session.timeout.ms", _int, 6000, "Smallest session timeout a classic-protocol member may ask for.", 0),
    Setting("group.max.session.timeout.ms", _int, 1800000, "Largest session timeout a classic-protocol member may ask for.", 0),
    Setting("group.max.size", _int, 2147483647, "Most members one classic group may have.", 1),
    Setting("group.consumer.min.session.timeout.ms", _int, 45000, "Smallest session timeout of KIP-848 members.", 1),
    Setting("group.consumer.max.session.timeout.ms", _int, 60000, "Largest session timeout of KIP-848 members.", 1),
    Setting("group.consumer.min.heartbeat.interval.ms", _int, 1000, "Smallest heartbeat interval of KIP-848 members "
            "(Kafka: 5000; 1000 here to allow the lower default interval).", 1),
    Setting("group.consumer.max.heartbeat.interval.ms", _int, 15000, "Largest heartbeat interval of KIP-848 members.", 1),
    Setting("group.consumer.max.size", _int, 2147483647, "Most members one KIP-848 group may have.", 1),
    Setting("connections.max.idle.ms", _int, 600000, "Close a connection idle (nothing read, nothing sent) for this long.", 1),
    Setting("max.connections", _int, 2147483647, "Most client connections the broker accepts at once.", 0),
    Setting("max.connections.per.ip", _int, 2147483647, "Most client connections from one IP address.", 0),
    Setting("max.connections.per.ip.overrides", _str, "", "Per-IP (or host name) limits overriding max.connections.per.ip: "
            "\"host:count,host:count\".", None),
    Setting("quota.window.num", _int, 11, "Samples a client quota's rate is measured over (client quotas: "
            "producer_byte_rate, consumer_byte_rate).", 1),
    Setting("quota.window.size.seconds", _int, 1, "Length of each client quota sample.", 1),
    # Cluster mode (pykbroker/cluster/): only with zookeeper.connect; without it none of these has an effect.
    Setting("zookeeper.connect", _str, "", "ZooKeeper hosts and chroot (host:port[,host:port]/chroot) of the cluster "
            "this broker joins; empty: a single-node broker without ZooKeeper."),
    Setting("zookeeper.session.timeout.ms", _int, 18000, "ZooKeeper session timeout: how long a broker that stops "
            "answering keeps its registration (and leaderships) before the controller moves them.", 1),
    Setting("zookeeper.connection.timeout.ms", _int, 18000, "How long start-up waits for ZooKeeper "
            "(Kafka: unset means the session timeout).", 1),
    Setting("broker.rack", _str, "", "Rack of this broker, for rack-aware replica assignment (all brokers or none)."),
    Setting("replica.lag.time.max.ms", _int, 30000, "A follower that has not caught up with its leader for this "
            "long leaves the ISR.", 1),
    Setting("replica.fetch.wait.max.ms", _int, 500, "How long a follower's fetch waits at the leader for new data.", 0),
    Setting("replica.high.watermark.checkpoint.interval.ms", _int, 5000, "How often the high watermarks are written "
            "to the log dir's replication-offset-checkpoint (read at start-up).", 1),
    Setting("replica.fetch.max.bytes", _int, 1048576, "Bytes a follower asks for per partition and fetch.", 1),
    Setting("auto.leader.rebalance.enable", _bool, True, "The controller moves leaderships back to each partition's "
            "preferred (first) replica when a broker's share of partitions led elsewhere exceeds "
            "leader.imbalance.per.broker.percentage."),
    Setting("leader.imbalance.check.interval.seconds", _int, 300, "How often the controller checks the leader "
            "imbalance.", 1),
    Setting("leader.imbalance.per.broker.percentage", _int, 10, "Percentage of a broker's preferred partitions "
            "that may be led by others before a preferred-leader election.", 0),
    Setting("replica.selector.class", _replica_selector, "", "KIP-392: org.apache.kafka.common.replica."
            "RackAwareReplicaSelector sends consumers with client.rack to an in-sync replica in their rack; "
            "unset: consumers read from the leader."),
    Setting("controlled.shutdown.enable", _bool, True, "On SIGTERM/SIGINT, hand the partitions this broker leads to "
            "other in-sync replicas before exiting."),
    Setting("queued.max.request.bytes", _int, -1, "Bytes of received requests held in memory across all connections "
            "(-1: bounded only by socket.request.max.bytes per connection).", -1),
)

BY_KEY = {s.key: s for s in SETTINGS}

# Broker-level log settings (log.segment.bytes, log.retention.hours, message.max.bytes...) are the
# defaults of every topic's LogConfig; the log layer owns their names, types and validation.
LOG_KEYS = frozenset(BROKER_TO_TOPIC_CONFIG) | {
    "log.retention.ms", "log.retention.minutes", "log.retention.hours",
    "log.roll.ms", "log.roll.hours", "log.roll.jitter.ms", "log.roll.jitter.hours",
}
ALIASES = {"broker.id": "node.id", "log.dir": "log.dirs"}


@cache
def kafka_broker_configs() -> dict[str, dict[str, Any]]:
    """Every broker config name Kafka defines (tools/kafka_configs/generate.py), with type and range."""
    data = json.loads((Path(__file__).parent / "kafka_configs.json").read_text(encoding="utf-8"))
    return data["broker"]


def _bounds(key: str, minimum: int | None) -> tuple[int | float | None, int | float | None]:
    """Kafka's validator range for `key`, inside its type's width; `minimum` where Kafka has none."""
    row = kafka_broker_configs().get(key, {})
    width = TYPE_WIDTHS.get(row.get("type", ""))
    lo = row.get("min", minimum if minimum is not None else (-width if width else None))
    hi = row.get("max", width - 1 if width else None)
    return lo, hi


def _check_known(key: str, value: str) -> None:
    """A Kafka name pykbroker does not act on: its value must still be what Kafka would accept."""
    row = kafka_broker_configs()[key]
    kind = row["type"]
    text = value.strip()
    try:
        if kind == "BOOLEAN":
            _bool(text)
            return
        if kind in TYPE_WIDTHS:
            number: int | float = int(text)
        elif kind == "DOUBLE":
            number = float(text)
        else:
            return
    except ValueError:
        raise ConfigError(f"config {key}={value!r}: expected {kind.lower()}") from None
    _check_range(key, value, number, *_bounds(key, None))


def _check_range(key: str, value: Any, number: int | float, lo: Any, hi: Any) -> None:
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        rng = f"at least {lo}" if hi is None else f"in [{lo}, {hi}]" if lo is not None else f"at most {hi}"
        raise ConfigError(f"config {key}={value!r}: must be {rng}")


def unknown_key_error(key: str) -> ConfigError:
    """Only a name Kafka itself does not have is an error; suggest the nearest one."""
    names = set(kafka_broker_configs()) | set(BY_KEY) | LOG_KEYS
    near = difflib.get_close_matches(key, names, n=1)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    return ConfigError(f"unknown config key {key!r} (not a Kafka broker config){hint}")


def no_effect_keys(raw: Mapping[str, Any]) -> list[str]:
    """Keys of `raw` that Kafka defines but pykbroker ignores (for one start-up warning)."""
    used = set(BY_KEY) | LOG_KEYS
    return sorted(k for k in raw if ALIASES.get(k, k) not in used)


def _attr(key: str) -> str:
    return key.replace(".", "_")


@dataclasses.dataclass(frozen=True)
class BrokerConfig:
    """Typed, frozen settings. Attribute names are the Kafka keys with dots as underscores."""

    values: Mapping[str, Any]
    log_config: LogConfig = LogConfig()
    #: Kafka config names given but without effect here (warned about once at start-up).
    ignored: tuple[str, ...] = ()
    #: The broker-level log settings as given (log.retention.hours, ...): topic defaults' synonyms.
    log_props: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def get(self, key: str) -> Any:
        return self.values[_attr(key)]

    @property
    def listen_host_port(self) -> tuple[str, int]:
        return parse_listener(self.values["listeners"])

    @property
    def data_dir(self) -> Path:
        return Path(self.values["log_dirs"].split(",")[0])

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> "BrokerConfig":
        """Validate `raw` (Kafka keys -> strings or values) against the table; defaults fill the rest."""
        values = {_attr(s.key): s.default for s in SETTINGS}
        log_props: dict[str, str] = {}
        for key, value in raw.items():
            key = ALIASES.get(key, key)
            if key in LOG_KEYS:
                log_props[key] = str(value)
                continue
            setting = BY_KEY.get(key)
            if setting is None:
                if key not in kafka_broker_configs() and not key.startswith("listener.name."):
                    raise unknown_key_error(key)
                if key in kafka_broker_configs():
                    _check_known(key, str(value))
                continue
            try:
                parsed = setting.parse(value) if isinstance(value, str) else setting.parse(str(value))
            except ValueError:
                raise ConfigError(f"config {key}={value!r}: expected {setting.type_name}") from None
            if setting.parse is _int:
                _check_range(key, value, parsed, *_bounds(key, setting.minimum))
            values[_attr(key)] = parsed
        parse_listener(values["listeners"])
        if values["advertised_listeners"]:
            parse_listener(values["advertised_listeners"])
        queued, largest = values["queued_max_request_bytes"], values["socket_request_max_bytes"]
        if 0 < queued < largest:  # Kafka's KafkaConfig check: one request must always fit
            raise ConfigError(f"queued.max.request.bytes={queued} must be at least socket.request.max.bytes={largest} "
                              "(or -1 for no limit)")
        try:
            parse_overrides(values["max_connections_per_ip_overrides"])
        except ValueError as e:
            raise ConfigError(f"config {e}") from None
        try:
            log_config = LogConfig.from_broker_configs(log_props)
        except InvalidConfigError as e:
            raise ConfigError(str(e)) from None
        return cls(values, log_config, tuple(no_effect_keys(raw)), log_props)


def parse_listeners(text: str) -> list[tuple[str, str, int]]:
    """Kafka's listeners list, 'NAME://host:port,...' (or a bare 'host:port'): every entry checked."""
    out = []
    for spec in (part.strip() for part in text.split(",")):
        name = "PLAINTEXT"
        if "://" in spec:
            name, _, spec = spec.partition("://")
        host, sep, port = spec.rpartition(":")
        if not sep or not port.isdigit():
            raise ConfigError(f"listener {text!r}: expected HOST:PORT in {spec!r}")
        if int(port) > 65535:
            raise ConfigError(f"listener {text!r}: port must be in [0, 65535], not {port}")
        out.append((name.upper(), host.strip("[]") or "0.0.0.0", int(port)))
    return out


def parse_listener(text: str) -> tuple[str, int]:
    """The listener clients use: the first of the list, which must be PLAINTEXT. Kafka's other
    listeners (CONTROLLER, SSL...) are checked, then left unserved (a warning says so)."""
    name, host, port = parse_listeners(text)[0]
    if name != "PLAINTEXT":
        raise ConfigError(f"listener {text!r}: only PLAINTEXT is supported")
    return host, port
