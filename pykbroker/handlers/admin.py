"""Cluster and topic administration: DescribeCluster, CreatePartitions, DescribeConfigs,
IncrementalAlterConfigs, DeleteRecords."""

from __future__ import annotations

from functools import partial

from typing import TYPE_CHECKING, Any

from ..cluster.assignment import AssignmentError, InvalidReplicaAssignmentError
from ..config import LOG_KEYS, SETTINGS, kafka_broker_configs
from ..log.config import kafka_topic_configs, topic_config_synonyms
from ..log.errors import (
    InvalidConfigError,
    InvalidPartitionsError,
    KafkaStorageError,
    NotLeaderError,
    OffsetOutOfRangeError,
    UnknownTopicOrPartitionError,
)
from ..protocol.errors import ErrorCode
from ..protocol.primitives import Msg
from .registry import RequestContext, authorized_operations, handles

if TYPE_CHECKING:
    from ..broker import Broker

TOPIC_RESOURCE, BROKER_RESOURCE = 2, 4
# DescribeConfigs ConfigSource values
TOPIC_CONFIG, STATIC_BROKER_CONFIG, DEFAULT_CONFIG = 1, 4, 5
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


# v2 (KIP-1073) adds include_fenced_brokers and brokers[].is_fenced: this broker is never fenced.
@handles("DESCRIBE_CLUSTER", 0, 2)
async def describe_cluster(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    host, port = broker.advertised
    if req.get("endpoint_type", 1) != 1:
        return Msg(throttle_time_ms=0, error_code=ErrorCode.UNSUPPORTED_ENDPOINT_TYPE,
                   error_message="only broker endpoints are served", endpoint_type=req.endpoint_type,
                   cluster_id=broker.cluster_id, controller_id=-1, brokers=[])
    return Msg(throttle_time_ms=0, error_code=0, error_message=None, endpoint_type=1, cluster_id=broker.cluster_id,
               controller_id=broker.node_id,
               brokers=[{"broker_id": broker.node_id, "host": host, "port": port, "rack": None}],
               cluster_authorized_operations=authorized_operations(
                   "cluster", req.get("include_cluster_authorized_operations", False)))


@handles("CREATE_PARTITIONS", 0, 3)
async def create_partitions(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    results = []
    for t in req.topics:
        code, message = ErrorCode.NONE, None
        topic = broker.topic(t.name)
        if topic is None:
            code, message = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {t.name} does not exist"
        elif broker.cluster is not None and broker.cluster.has_topic(t.name):
            code, message = await _create_partitions_in_cluster(broker, t, req)
        elif (message := assignment_error(t.assignments, t.count - topic.partitions, broker.node_id)) is not None:
            code = ErrorCode.INVALID_REPLICA_ASSIGNMENT
        else:
            try:
                await broker.create_partitions(t.name, t.count, validate_only=req.validate_only)
            except InvalidPartitionsError as e:
                code, message = ErrorCode.INVALID_PARTITIONS, str(e)
            except UnknownTopicOrPartitionError as e:
                code, message = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, str(e)
            except KafkaStorageError as e:
                code, message = ErrorCode.KAFKA_STORAGE_ERROR, str(e)
        results.append({"name": t.name, "error_code": code, "error_message": message})
    return Msg(throttle_time_ms=0, results=results)


async def _create_partitions_in_cluster(broker: "Broker", t: Msg, req: Msg) -> tuple[int, str | None]:
    """CreatePartitions through ZooKeeper (cluster/node.py); Kafka's errors from its checks."""
    assert broker.cluster is not None
    assignments = None if t.assignments is None else [list(a.broker_ids) for a in t.assignments]
    try:
        await broker.cluster.create_partitions(t.name, t.count, assignments, req.validate_only, req.timeout_ms / 1000)
    except InvalidPartitionsError as e:
        return ErrorCode.INVALID_PARTITIONS, str(e)
    except InvalidReplicaAssignmentError as e:
        return ErrorCode.INVALID_REPLICA_ASSIGNMENT, str(e)
    except AssignmentError as e:
        return ErrorCode.INVALID_REPLICATION_FACTOR, str(e)
    except KafkaStorageError as e:
        return ErrorCode.KAFKA_STORAGE_ERROR, str(e)
    return ErrorCode.NONE, None


def replicas_error(replicas: list[int], node_id: int) -> str | None:
    """Kafka's validateManualPartitionAssignment on a cluster whose one broker is `node_id` and whose
    partitions have one replica each: None when `replicas` is acceptable."""
    ordered = sorted(replicas)
    if not ordered:
        return "The manual partition assignment includes an empty replica list."
    for previous, broker_id in zip([None, *ordered], ordered):
        if broker_id != node_id:
            return f"The manual partition assignment includes broker {broker_id}, but no such broker is registered."
        if broker_id == previous:
            return f"The manual partition assignment includes the broker {broker_id} more than once."
    if len(ordered) != 1:
        return (f"The manual partition assignment includes a partition with {len(ordered)} replica(s), but this "
                f"is not consistent with previous partitions, which have 1 replica(s).")
    return None


def assignment_error(assignments: list[Msg] | None, additional: int, node_id: int) -> str | None:
    """CreatePartitions' explicit assignments, checked as Kafka's ReplicationControlManager does: None
    when they are acceptable (or absent, or the count is not an increase, which create_partitions
    refuses with INVALID_PARTITIONS, as Kafka does first)."""
    if assignments is None or additional <= 0:
        return None
    if len(assignments) != additional:
        return (f"Attempted to add {additional} additional partition(s), but only {len(assignments)} "
                f"assignment(s) were specified.")
    return next((e for a in assignments if (e := replicas_error(a.broker_ids, node_id)) is not None), None)


#: DescribeConfigs' config_type codes, by Kafka's ConfigDef type name.
CONFIG_TYPES = {"BOOLEAN": 1, "STRING": 2, "INT": 3, "SHORT": 4, "LONG": 5, "DOUBLE": 6, "LIST": 7, "CLASS": 8,
                "PASSWORD": 9}


def _config_entry(name: str, value: str | None, source: int, facts: dict[str, Any],
                  synonyms: list[dict[str, Any]] | None = None, documentation: str | None = None) -> dict[str, Any]:
    """One DescribeConfigs entry; `facts` is Kafka's row for the name (kafka_configs.json)."""
    return {"name": name, "value": value, "read_only": False, "is_default": source == DEFAULT_CONFIG,
            "config_source": source, "is_sensitive": False, "synonyms": synonyms or [],
            "config_type": CONFIG_TYPES.get(facts.get("type") or "", 0), "documentation": documentation}


def _topic_config_entry(broker: "Broker", info: Any, name: str, value: str, include_synonyms: bool,
                        include_documentation: bool) -> dict[str, Any]:
    """As Kafka's ConfigHelper: the source is the most specific place the value comes from (the
    topic's override, a broker setting, or the default), and the synonyms list each of them."""
    synonyms = []
    if name in info.configs:
        synonyms.append({"name": name, "value": info.configs[name], "source": TOPIC_CONFIG})
    broker_keys = topic_config_synonyms(name)
    for key in broker_keys:
        if key in broker.config.log_props:
            synonyms.append({"name": key, "value": broker.config.log_props[key], "source": STATIC_BROKER_CONFIG})
    defaults = kafka_broker_configs()
    if broker_keys and broker_keys[-1] in defaults and defaults[broker_keys[-1]].get("default") is not None:
        default = defaults[broker_keys[-1]]["default"]
        synonyms.append({"name": broker_keys[-1], "value": _text(default), "source": DEFAULT_CONFIG})
    source = synonyms[0]["source"] if synonyms else DEFAULT_CONFIG
    facts = kafka_topic_configs().get(name, {})
    return _config_entry(name, value, source, facts, synonyms if include_synonyms else [],
                         facts.get("documentation") if include_documentation else None)


def _broker_log_entry(broker: "Broker", key: str, include_documentation: bool) -> dict[str, Any]:
    """A broker-level log setting (the default of every topic's config): as given, else Kafka's default."""
    facts = kafka_broker_configs().get(key, {})
    given = broker.config.log_props.get(key)
    default = facts.get("default")
    value = given if given is not None else (None if default is None or isinstance(default, dict) else _text(default))
    return _config_entry(key, value, DEFAULT_CONFIG if given is None else STATIC_BROKER_CONFIG, facts,
                         documentation=facts.get("documentation") if include_documentation else None)


def _broker_config_entry(broker: "Broker", setting: Any, include_documentation: bool) -> dict[str, Any]:
    """A broker setting: Kafka's own documentation of the name where Kafka has it, else ours."""
    value = broker.config.get(setting.key)
    facts = kafka_broker_configs().get(setting.key, {})
    source = DEFAULT_CONFIG if value == setting.default else STATIC_BROKER_CONFIG
    doc = (facts.get("documentation") or setting.doc) if include_documentation else None
    return _config_entry(setting.key, _text(value), source, facts, documentation=doc)


@handles("DESCRIBE_CONFIGS", 0, 4)
async def describe_configs(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    results = []
    documentation = req.get("include_documentation", False)  # v3+ (KIP-569)
    for r in req.resources:
        out: dict[str, Any] = {"error_code": 0, "error_message": None, "resource_type": r.resource_type,
                               "resource_name": r.resource_name, "configs": []}
        wanted = set(r.configuration_keys) if r.configuration_keys is not None else None
        if r.resource_type == TOPIC_RESOURCE:
            info = broker.logs.topics.get(r.resource_name)
            if info is None:
                out.update(error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, error_message="no such topic")
            else:
                synonyms = req.get("include_synonyms", False)
                out["configs"] = [_topic_config_entry(broker, info, k, v, synonyms, documentation)
                                  for k, v in info.config.to_kafka_configs().items() if wanted is None or k in wanted]
        elif r.resource_type == BROKER_RESOURCE and r.resource_name in ("", str(broker.node_id)):
            out["configs"] = [_broker_config_entry(broker, s, documentation)
                              for s in SETTINGS if wanted is None or s.key in wanted]
            out["configs"] += [_broker_log_entry(broker, key, documentation)
                               for key in sorted(LOG_KEYS) if wanted is None or key in wanted]
        else:
            out.update(error_code=ErrorCode.INVALID_REQUEST,
                       error_message=f"resource type {r.resource_type} {r.resource_name!r} is not described here")
        results.append(out)
    return Msg(throttle_time_ms=0, results=results)


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def apply_config_ops(ops: list[tuple[int, str, str | None]], configs: dict[str, str | None],
                     effective: dict[str, str]) -> dict[str, str | None]:
    """IncrementalAlterConfigs' SET/DELETE/APPEND/SUBTRACT on a topic's current overrides."""
    for op, name, value in ops:
        if op == SET:
            configs[name] = value
        elif op == DELETE:
            configs.pop(name, None)
        else:
            items = [x for x in (configs.get(name) or effective.get(name) or "").split(",") if x]
            extra = [x for x in (value or "").split(",") if x]
            items = items + [x for x in extra if x not in items] if op == APPEND else [x for x in items if x not in extra]
            configs[name] = ",".join(items)
    return configs


@handles("ALTER_CONFIGS", 0, 2)
async def alter_configs(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    """The legacy AlterConfigs: the configs given replace all of the topic's overrides."""
    responses = []
    for r in req.resources:
        out = {"error_code": 0, "error_message": None, "resource_type": r.resource_type,
               "resource_name": r.resource_name}
        if r.resource_type != TOPIC_RESOURCE:
            out.update(error_code=ErrorCode.INVALID_REQUEST,
                       error_message="broker configs cannot be updated dynamically here: restart with --set")
        elif broker.logs.topics.get(r.resource_name) is None:
            out.update(error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, error_message="no such topic")
        else:
            replacement = {c.name: c.value for c in r.configs}
            out.update(await _alter(broker, r.resource_name, lambda configs, effective: dict(replacement),
                                    req.validate_only))
        responses.append(out)
    return Msg(throttle_time_ms=0, responses=responses)


async def _alter(broker: "Broker", topic: str, change: Any, validate_only: bool) -> dict[str, Any]:
    """Run a topic config change; its failure as (error_code, error_message)."""
    try:
        if broker.cluster is not None and broker.cluster.has_topic(topic):
            await broker.cluster.alter_topic_configs(topic, change, validate_only=validate_only)
        else:
            await broker.alter_topic_configs(topic, change, validate_only=validate_only)
    except InvalidConfigError as e:
        return {"error_code": ErrorCode.INVALID_CONFIG, "error_message": str(e)}
    except UnknownTopicOrPartitionError as e:
        return {"error_code": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "error_message": str(e)}
    except KafkaStorageError as e:
        return {"error_code": ErrorCode.KAFKA_STORAGE_ERROR, "error_message": str(e)}
    return {}


@handles("INCREMENTAL_ALTER_CONFIGS", 0, 1)
async def incremental_alter_configs(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    responses = []
    for r in req.resources:
        out = {"error_code": 0, "error_message": None, "resource_type": r.resource_type,
               "resource_name": r.resource_name}
        info = broker.logs.topics.get(r.resource_name) if r.resource_type == TOPIC_RESOURCE else None
        if info is None:
            code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION if r.resource_type == TOPIC_RESOURCE else ErrorCode.INVALID_REQUEST
            out.update(error_code=code, error_message="only existing topics' configs can be altered")
            responses.append(out)
            continue
        bad = [c.config_operation for c in r.configs if c.config_operation not in (SET, DELETE, APPEND, SUBTRACT)]
        if bad:
            out.update(error_code=ErrorCode.INVALID_REQUEST, error_message=f"unknown operation {bad[0]}")
        ops = [(c.config_operation, c.name, c.value) for c in r.configs]
        if not out["error_code"]:
            out.update(await _alter(broker, r.resource_name, partial(apply_config_ops, ops), req.validate_only))
        responses.append(out)
    return Msg(throttle_time_ms=0, responses=responses)


@handles("DELETE_RECORDS", 0, 2)
async def delete_records(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    topics = []
    for t in req.topics:
        parts = []
        for p in t.partitions:
            partition = broker.partition(t.name, p.partition_index)
            out = {"partition_index": p.partition_index, "low_watermark": -1, "error_code": 0}
            if partition is None:
                out["error_code"] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            else:
                offset = partition.high_watermark if p.offset == -1 else p.offset
                try:
                    out["low_watermark"] = await partition.delete_records(offset)
                except OffsetOutOfRangeError:
                    out["error_code"] = ErrorCode.OFFSET_OUT_OF_RANGE
                except NotLeaderError:
                    out["error_code"] = ErrorCode.NOT_LEADER_OR_FOLLOWER
                except (KafkaStorageError, OSError):
                    out["error_code"] = ErrorCode.KAFKA_STORAGE_ERROR
            parts.append(out)
        topics.append({"name": t.name, "partitions": parts})
    return Msg(throttle_time_ms=0, topics=topics)
