"""What the cluster keeps in ZooKeeper, as values, in Kafka's own ZooKeeper-mode JSON shapes.

    /brokers/ids/<id>                              {"version":4,"host":..,"port":..,"endpoints":[..],"rack":..}  ephemeral
    /controller                                    {"version":1,"brokerid":<id>,"timestamp":".."}                ephemeral
    /controller_epoch                              "<epoch>"
    /brokers/topics/<topic>                        {"version":3,"topic_id":"<uuid>","partitions":{"0":[1,2,3]},..}
    /brokers/topics/<topic>/partitions/<p>/state   {"version":1,"leader":..,"leader_epoch":..,"isr":[..],"controller_epoch":..}
    /config/topics/<topic>                         {"version":1,"config":{..}}
    /config/changes/config_change_<seq>            {"version":2,"entity_path":"topics/<topic>"}
    /admin/delete_topics/<topic>[/<broker id>]     (empty; a child per replica that deleted its data)

Parsing never raises on a foreign or damaged node: ``None`` comes back and the caller logs the path.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..log.manager import kafka_uuid_str, parse_kafka_uuid

NO_LEADER = -1


@dataclass(frozen=True)
class BrokerInfo:
    broker_id: int
    host: str
    port: int
    rack: str | None = None

    def to_json(self) -> bytes:
        body: dict[str, Any] = {
            "version": 4, "host": self.host, "port": self.port, "jmx_port": -1,
            "timestamp": str(int(time.time() * 1000)),
            "endpoints": [f"PLAINTEXT://{self.host}:{self.port}"],
            "listener_security_protocol_map": {"PLAINTEXT": "PLAINTEXT"},
        }
        if self.rack:
            body["rack"] = self.rack  # Kafka writes the key only when broker.rack is set
        return json.dumps(body).encode()

    @classmethod
    def from_json(cls, broker_id: int, data: bytes) -> "BrokerInfo | None":
        raw = _load(data)
        if raw is None:
            return None
        host, port = raw.get("host"), raw.get("port")
        for endpoint in raw.get("endpoints") or []:
            if isinstance(endpoint, str) and endpoint.startswith("PLAINTEXT://"):
                host, _, p = endpoint[len("PLAINTEXT://"):].rpartition(":")
                port = int(p) if p.isdigit() else port
        if not isinstance(host, str) or not isinstance(port, int):
            return None
        rack = raw.get("rack")
        return cls(broker_id, host, port, rack if isinstance(rack, str) else None)


@dataclass(frozen=True)
class PartitionState:
    """Leader, leader epoch and ISR of one partition; ``zk_version`` is its znode version, the
    condition of the next write (so a stale controller or leader cannot overwrite a newer state)."""

    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    controller_epoch: int
    zk_version: int = -1

    def to_json(self) -> bytes:
        return json.dumps({"controller_epoch": self.controller_epoch, "leader": self.leader, "version": 1,
                           "leader_epoch": self.leader_epoch, "isr": list(self.isr)}).encode()

    @classmethod
    def from_json(cls, data: bytes, zk_version: int) -> "PartitionState | None":
        raw = _load(data)
        try:
            assert raw is not None
            return cls(int(raw["leader"]), int(raw["leader_epoch"]), tuple(int(i) for i in raw["isr"]),
                       int(raw.get("controller_epoch", 0)), zk_version)
        except (AssertionError, KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class TopicAssignment:
    """A topic's id and replica list per partition (the first replica is the preferred leader)."""

    name: str
    topic_id: uuid.UUID
    replicas: Mapping[int, tuple[int, ...]]

    def to_json(self) -> bytes:
        return json.dumps({"version": 3, "topic_id": kafka_uuid_str(self.topic_id),
                           "partitions": {str(p): list(r) for p, r in sorted(self.replicas.items())},
                           "adding_replicas": {}, "removing_replicas": {}}).encode()

    @classmethod
    def from_json(cls, name: str, data: bytes) -> "TopicAssignment | None":
        raw = _load(data)
        try:
            assert raw is not None
            replicas = {int(p): tuple(int(i) for i in r) for p, r in raw["partitions"].items()}
            return cls(name, parse_kafka_uuid(raw["topic_id"]), replicas)
        except (AssertionError, KeyError, TypeError, ValueError, AttributeError):
            return None


def topic_config_json(configs: Mapping[str, str]) -> bytes:
    return json.dumps({"version": 1, "config": dict(configs)}).encode()


def parse_topic_config(data: bytes) -> dict[str, str]:
    raw = _load(data) or {}
    config = raw.get("config")
    return {str(k): str(v) for k, v in config.items()} if isinstance(config, dict) else {}


def controller_json(broker_id: int) -> bytes:
    return json.dumps({"version": 1, "brokerid": broker_id, "timestamp": str(int(time.time() * 1000))}).encode()


def parse_controller(data: bytes) -> int | None:
    raw = _load(data)
    value = raw.get("brokerid") if raw is not None else None
    return value if isinstance(value, int) else None


def producer_id_block_json(broker_id: int, start: int, end: int) -> bytes:
    return json.dumps({"version": 1, "broker": broker_id, "block_start": str(start), "block_end": str(end)}).encode()


def parse_producer_id_block_end(data: bytes) -> int:
    """The last id handed out; a damaged node raises ValueError (ids are never guessed: reusing one
    would let two producers share idempotence state)."""
    raw = _load(data)
    if raw is None or "block_end" not in raw:
        raise ValueError(f"/latest_producer_id_block holds {data[:200]!r}, not Kafka's producer id block")
    return int(raw["block_end"])


def cluster_id_json(cluster_id: str) -> bytes:
    return json.dumps({"version": "1", "id": cluster_id}).encode()


def parse_cluster_id(data: bytes, path: str) -> str:
    """/cluster/id as Kafka writes it; anything else raises ValueError (a broker must not make up
    another id for a cluster that has one)."""
    raw = _load(data)
    if raw is None or not isinstance(raw.get("id"), str) or not raw["id"]:
        raise ValueError(f"{path} holds {data[:200]!r}, not Kafka's cluster id")
    return raw["id"]


@dataclass
class ClusterSnapshot:
    """Everything one read of ZooKeeper saw: live brokers, the controller, topics and partition states."""

    brokers: dict[int, BrokerInfo] = field(default_factory=dict)
    controller_id: int = NO_LEADER
    controller_epoch: int = 0
    controller_epoch_version: int = -1
    topics: dict[str, TopicAssignment] = field(default_factory=dict)
    configs: dict[str, dict[str, str]] = field(default_factory=dict)
    states: dict[tuple[str, int], PartitionState] = field(default_factory=dict)
    #: Topics queued for deletion (/admin/delete_topics/<t>), with the replicas that have deleted them.
    deleting: dict[str, set[int]] = field(default_factory=dict)


def _load(data: bytes | None) -> dict[str, Any] | None:
    try:
        raw = json.loads(data) if data else None
    except (ValueError, UnicodeDecodeError):
        return None
    return raw if isinstance(raw, dict) else None
