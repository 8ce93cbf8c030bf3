"""`pykbroker topics list|create|delete|describe`: kafka-topics.sh's everyday subset."""

from __future__ import annotations

import argparse
import sys

from ..log.manager import kafka_uuid_str
from ..protocol.errors import ErrorCode
from .client import EARLIEST, LATEST, Client, ToolError, check


def parse_configs(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ToolError(f"--config {item!r}: expected KEY=VALUE")
        out[key.strip()] = value
    return out


def run(args: argparse.Namespace) -> int:
    with Client(args.bootstrap, args.timeout_ms / 1000) as client:
        if args.action == "list":
            return _list(client, args)
        if args.action == "create":
            return _create(client, args)
        if args.action == "delete":
            return _delete(client, args)
        return _describe(client, args)


def _list(client: Client, args: argparse.Namespace) -> int:
    topics = client.metadata(None).topics
    for t in sorted(topics, key=lambda t: t.name):
        if args.exclude_internal and t.is_internal:
            continue
        print(t.name)
    return 0


def _create(client: Client, args: argparse.Namespace) -> int:
    configs = parse_configs(args.config)
    r = client.create_topic(args.name, args.partitions, args.replication_factor, configs)
    if r.error_code == ErrorCode.TOPIC_ALREADY_EXISTS and args.if_not_exists:
        return 0
    check(r.error_code, f"cannot create topic {args.name!r}", r.error_message)
    print(f"Created topic {args.name} with {r.num_partitions} partition(s).")
    return 0


def _delete(client: Client, args: argparse.Namespace) -> int:
    r = client.delete_topic(args.name)
    if r.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION and args.if_exists:
        return 0
    check(r.error_code, f"cannot delete topic {args.name!r}", r.error_message)
    print(f"Deleted topic {args.name}.")
    return 0


def _describe(client: Client, args: argparse.Namespace) -> int:
    names = args.names or None
    topics = client.metadata(names).topics
    failed = False
    try:
        configs = client.topic_configs(t.name for t in topics if not t.error_code)
    except ToolError:  # a broker without DescribeConfigs (it closes the connection): no configs shown
        client.reconnect()
        configs = {}
    for t in sorted(topics, key=lambda t: t.name or ""):
        if t.error_code:
            print(f"pykbroker topics: topic {t.name!r}: {ErrorCode(t.error_code).name}", file=sys.stderr)
            failed = True
            continue
        if names is None and t.is_internal and args.exclude_internal:
            continue
        parts = sorted(t.partitions, key=lambda p: p.partition_index)
        index = [p.partition_index for p in parts]
        start = client.list_offsets(t.name, index, EARLIEST)
        end = client.list_offsets(t.name, index, LATEST)
        replication = len(parts[0].replica_nodes) if parts else 0
        print(f"Topic: {t.name}\tTopicId: {kafka_uuid_str(t.topic_id)}\tPartitionCount: {len(parts)}\t"
              f"ReplicationFactor: {replication}\tInternal: {str(t.is_internal).lower()}\t"
              f"Configs: {','.join(f'{k}={v}' for k, v in sorted(configs.get(t.name, {}).items()))}")
        for p in parts:
            print(f"\tTopic: {t.name}\tPartition: {p.partition_index}\tLeader: {p.leader_id}\t"
                  f"Replicas: {_ids(p.replica_nodes)}\tIsr: {_ids(p.isr_nodes)}\t"
                  f"LogStartOffset: {start.get(p.partition_index, -1)}\tLogEndOffset: {end.get(p.partition_index, -1)}")
    return 1 if failed else 0


def _ids(nodes: list[int]) -> str:
    return ",".join(str(n) for n in nodes)
