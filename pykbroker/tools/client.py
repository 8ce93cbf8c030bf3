"""The command-line tools' Kafka client: typed helpers over pykbroker's blocking WireClient.

One connection to the one broker named by --bootstrap (no metadata routing, no retries): enough for
pykbroker or any single-node Kafka-compatible broker. Errors become ToolError with Kafka's error
name, which the command line prints before exiting with status 1.
"""

from __future__ import annotations

import socket
from typing import Any, Iterable, Mapping

from ..protocol.errors import ErrorCode
from ..protocol.primitives import DecodeError, Msg
from ..wire_client import WireClient

PRODUCE, FETCH, LIST_OFFSETS, METADATA, OFFSET_COMMIT, OFFSET_FETCH = 0, 1, 2, 3, 8, 9
DESCRIBE_GROUPS, LIST_GROUPS, CREATE_TOPICS, DELETE_TOPICS, DESCRIBE_CONFIGS = 15, 16, 19, 20, 32
# The versions used, all served by pykbroker (and by Kafka 3.x).
V_PRODUCE, V_FETCH, V_LIST_OFFSETS, V_METADATA = 9, 12, 7, 12
V_OFFSET_COMMIT, V_OFFSET_FETCH, V_DESCRIBE_GROUPS, V_LIST_GROUPS = 8, 8, 5, 4
V_CREATE_TOPICS, V_DELETE_TOPICS, V_DESCRIBE_CONFIGS = 7, 6, 4
TOPIC_RESOURCE, DYNAMIC_TOPIC_CONFIG = 2, 1

EARLIEST, LATEST = -2, -1
CLIENT_ID = "pykbroker-cli"


class ToolError(Exception):
    """A failure to report on stderr (exit status 1)."""


def error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"error {code}"


def check(code: int, what: str, message: str | None = None) -> None:
    if code:
        detail = f": {message}" if message else ""
        raise ToolError(f"{what}: {error_name(code)}{detail}")


class Client:
    def __init__(self, bootstrap: str, timeout_s: float = 30) -> None:
        self.bootstrap = bootstrap
        if ":" not in bootstrap or not bootstrap.rsplit(":", 1)[1].isdigit():
            raise ToolError(f"--bootstrap {bootstrap!r}: expected HOST:PORT")
        self.timeout_s = timeout_s
        self.wire = self._connect()

    def _connect(self) -> WireClient:
        try:
            return WireClient(self.bootstrap, self.timeout_s)
        except OSError as e:
            raise ToolError(f"cannot connect to {self.bootstrap}: {e.strerror or e}") from None

    def reconnect(self) -> None:
        self.wire.close()
        self.wire = self._connect()

    def close(self) -> None:
        self.wire.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, api_key: int, version: int, body: Mapping[str, Any]) -> Msg:
        try:
            sent = self.wire.send(api_key, version, body, client_id=CLIENT_ID)
            correlation_id, response = self.wire.receive(api_key, version)
        except socket.timeout:
            raise ToolError(f"no answer from {self.bootstrap} in time") from None
        except (OSError, ConnectionError) as e:
            raise ToolError(f"connection to {self.bootstrap} failed: {e}") from None
        except DecodeError as e:
            raise ToolError(f"unreadable answer from {self.bootstrap}: {e}") from None
        if correlation_id != sent:
            raise ToolError(f"answer to request {correlation_id} received for request {sent}")
        return response

    # ------------------------------------------------------------------ topics

    def metadata(self, topics: Iterable[str] | None, auto_create: bool = False) -> Msg:
        body = {"topics": None if topics is None else [{"name": t} for t in topics],
                "allow_auto_topic_creation": auto_create, "include_topic_authorized_operations": False}
        return self.request(METADATA, V_METADATA, body)

    def partitions(self, topic: str, auto_create: bool = False) -> list[int]:
        t = self.metadata([topic], auto_create).topics[0]
        check(t.error_code, f"topic {topic!r}")
        return sorted(p.partition_index for p in t.partitions)

    def create_topic(self, name: str, partitions: int, replication_factor: int,
                     configs: Mapping[str, str], validate_only: bool = False) -> Msg:
        body = {"topics": [{"name": name, "num_partitions": partitions, "replication_factor": replication_factor,
                            "assignments": [], "configs": [{"name": k, "value": v} for k, v in configs.items()]}],
                "timeout_ms": 30000, "validate_only": validate_only}
        return self.request(CREATE_TOPICS, V_CREATE_TOPICS, body).topics[0]

    def topic_configs(self, names: Iterable[str]) -> dict[str, dict[str, str | None]]:
        """The configs set on each topic (not the defaults), as kafka-topics.sh --describe shows them."""
        body = {"resources": [{"resource_type": TOPIC_RESOURCE, "resource_name": n, "configuration_keys": None}
                              for n in names], "include_synonyms": False, "include_documentation": False}
        out: dict[str, dict[str, str | None]] = {}
        for r in self.request(DESCRIBE_CONFIGS, V_DESCRIBE_CONFIGS, body).results:
            check(r.error_code, f"DescribeConfigs of {r.resource_name!r}", r.error_message)
            out[r.resource_name] = {c.name: c.value for c in r.configs if c.config_source == DYNAMIC_TOPIC_CONFIG}
        return out

    def delete_topic(self, name: str) -> Msg:
        return self.request(DELETE_TOPICS, V_DELETE_TOPICS, {"topics": [{"name": name}], "timeout_ms": 30000}).responses[0]

    def list_offsets(self, topic: str, partitions: Iterable[int], timestamp: int,
                     strict: bool = True) -> dict[int, int]:
        """Offsets of `partitions` at `timestamp` (EARLIEST, LATEST or a time in ms); with
        strict=False, partitions the broker reports an error for are left out."""
        parts = list(partitions)
        if not parts:
            return {}
        body = {"replica_id": -1, "isolation_level": 0, "topics": [
            {"name": topic, "partitions": [{"partition_index": p, "current_leader_epoch": -1, "timestamp": timestamp}
                                           for p in parts]}]}
        out = {}
        for t in self.request(LIST_OFFSETS, V_LIST_OFFSETS, body).topics:
            for p in t.partitions:
                if p.error_code and not strict:
                    continue
                check(p.error_code, f"ListOffsets {topic}-{p.partition_index}")
                out[p.partition_index] = p.offset
        return out

    # ------------------------------------------------------------------ records

    def produce(self, topic: str, partition: int, batch: bytes, acks: int) -> int | None:
        """Send one record batch; returns its base offset (None with acks=0, which gets no answer)."""
        body = {"transactional_id": None, "acks": acks, "timeout_ms": 30000, "topic_data": [
            {"name": topic, "partition_data": [{"index": partition, "records": batch}]}]}
        if acks == 0:
            self.wire.send(PRODUCE, V_PRODUCE, body, client_id=CLIENT_ID)
            return None
        r = self.request(PRODUCE, V_PRODUCE, body).responses[0].partition_responses[0]
        check(r.error_code, f"produce to {topic}-{partition}", r.error_message)
        return r.base_offset

    def fetch(self, topic: str, positions: Mapping[int, int], max_wait_ms: int,
              partition_max_bytes: int = 1 << 20) -> list[Msg]:
        body = {"replica_id": -1, "max_wait_ms": max_wait_ms, "min_bytes": 1, "max_bytes": 50 << 20,
                "isolation_level": 0, "session_id": 0, "session_epoch": -1,
                "topics": [{"topic": topic, "partitions": [
                    {"partition": p, "current_leader_epoch": -1, "fetch_offset": offset, "last_fetched_epoch": -1,
                     "log_start_offset": -1, "partition_max_bytes": partition_max_bytes}
                    for p, offset in positions.items()]}],
                "forgotten_topics_data": [], "rack_id": ""}
        r = self.request(FETCH, V_FETCH, body)
        check(r.error_code, "fetch")
        return [p for t in r.responses for p in t.partitions]

    # ------------------------------------------------------------------ groups

    def list_groups(self) -> list[Msg]:
        r = self.request(LIST_GROUPS, V_LIST_GROUPS, {"states_filter": []})
        check(r.error_code, "ListGroups")
        return list(r.groups)

    def describe_group(self, group: str) -> Msg:
        g = self.request(DESCRIBE_GROUPS, V_DESCRIBE_GROUPS,
                         {"groups": [group], "include_authorized_operations": False}).groups[0]
        check(g.error_code, f"group {group!r}")
        return g

    def committed(self, group: str, topics: Mapping[str, Iterable[int]] | None = None) -> dict[tuple[str, int], int]:
        """Committed offsets of the group (all of them when `topics` is None); -1 = none committed."""
        wanted = None if topics is None else [{"name": t, "partition_indexes": list(ps)} for t, ps in topics.items()]
        r = self.request(OFFSET_FETCH, V_OFFSET_FETCH,
                         {"groups": [{"group_id": group, "topics": wanted}], "require_stable": False})
        g = r.groups[0]
        check(g.error_code, f"OffsetFetch of group {group!r}")
        out = {}
        for t in g.topics:
            for p in t.partitions:
                check(p.error_code, f"OffsetFetch {t.name}-{p.partition_index}")
                out[(t.name, p.partition_index)] = p.committed_offset
        return out

    def commit(self, group: str, offsets: Mapping[tuple[str, int], int]) -> None:
        """A "simple" commit (generation -1, no member id): Kafka accepts it for a group without members."""
        by_topic: dict[str, list[dict[str, Any]]] = {}
        for (topic, partition), offset in offsets.items():
            by_topic.setdefault(topic, []).append({"partition_index": partition, "committed_offset": offset,
                                                   "committed_leader_epoch": -1, "committed_metadata": ""})
        if not by_topic:
            return
        body = {"group_id": group, "generation_id_or_member_epoch": -1, "member_id": "", "group_instance_id": None,
                "topics": [{"name": t, "partitions": ps} for t, ps in by_topic.items()]}
        for t in self.request(OFFSET_COMMIT, V_OFFSET_COMMIT, body).topics:
            for p in t.partitions:
                check(p.error_code, f"commit of group {group!r} for {t.name}-{p.partition_index}")


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (32-bit, seed 0x9747b28c) as a signed int, like the Java client's Utils.murmur2."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    body = length - length % 4
    for i in range(0, body, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    tail = length % 4
    if tail == 3:
        h ^= data[body + 2] << 16
    if tail >= 2:
        h ^= data[body + 1] << 8
    if tail >= 1:
        h ^= data[body]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_key(key: bytes, partitions: int) -> int:
    """The Java client's default partitioner for a keyed record: toPositive(murmur2(key)) % partitions."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
