"""`pykbroker transactions list|describe`: kafka-transactions.sh's list and describe."""

from __future__ import annotations

import argparse
import time

from ..protocol.errors import ErrorCode
from .client import METADATA, V_METADATA, Client, ToolError
from .table import dash, print_table

LIST_TRANSACTIONS, DESCRIBE_TRANSACTIONS, FIND_COORDINATOR = 66, 65, 10
TRANSACTION_KEY = 1


def run(args: argparse.Namespace) -> int:
    """As kafka-transactions.sh: ``list`` asks every broker (each coordinates its own transactional
    ids), ``describe`` asks the id's coordinator."""
    timeout_s = args.timeout_ms / 1000
    with Client(args.bootstrap, timeout_s) as client:
        if args.action == "list":
            rows = []
            for node_id, address in _brokers(client):
                with Client(address, timeout_s) as broker:
                    rows += [(t.transactional_id, str(node_id), str(t.producer_id), t.transaction_state)
                             for t in _list(broker, args.state or [])]
            print_table(("TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "STATE"), sorted(rows))
            return 0
        r = client.request(FIND_COORDINATOR, 3, {"key": args.transactional_id, "key_type": TRANSACTION_KEY})
        if r.error_code:
            raise ToolError(f"FindCoordinator failed: {ErrorCode(r.error_code).name}")
        with Client(f"{r.host}:{r.port}", timeout_s) as coordinator:
            return _describe(coordinator, args.transactional_id)


def _brokers(client: Client) -> list[tuple[int, str]]:
    md = client.request(METADATA, V_METADATA, {"topics": [], "allow_auto_topic_creation": False,
                                               "include_topic_authorized_operations": False})
    return sorted((b.node_id, f"{b.host}:{b.port}") for b in md.brokers)


def _list(client: Client, states: list[str]) -> list:
    r = client.request(LIST_TRANSACTIONS, 1, {"state_filters": states, "producer_id_filters": [],
                                              "duration_filter": -1})
    if r.error_code:
        raise ToolError(f"ListTransactions failed: {ErrorCode(r.error_code).name}")
    if r.unknown_state_filters:
        raise ToolError(f"unknown transaction state(s): {', '.join(r.unknown_state_filters)}")
    return list(r.transaction_states)


def _describe(client: Client, txn_id: str) -> int:
    state = client.request(DESCRIBE_TRANSACTIONS, 0, {"transactional_ids": [txn_id]}).transaction_states[0]
    if state.error_code == ErrorCode.TRANSACTIONAL_ID_NOT_FOUND:
        raise ToolError(f"transactional id {txn_id!r} does not exist")
    if state.error_code:
        raise ToolError(f"DescribeTransactions failed: {ErrorCode(state.error_code).name}")
    start = state.transaction_start_time_ms
    duration = int(time.time() * 1000) - start if start >= 0 else None
    partitions = ",".join(f"{t.topic}-{p}" for t in state.topics for p in t.partitions)
    print_table(("TRANSACTIONAL-ID", "PRODUCER-ID", "PRODUCER-EPOCH", "STATE", "TIMEOUT-MS", "START-MS", "DURATION-MS",
            "PARTITIONS"),
           [(txn_id, str(state.producer_id), str(state.producer_epoch), state.transaction_state,
             str(state.transaction_timeout_ms), dash(start if start >= 0 else None), dash(duration),
             partitions or "-")])
    return 0
