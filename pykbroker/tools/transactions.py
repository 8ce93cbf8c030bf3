"""`pykbroker transactions list|describe`: kafka-transactions.sh's list and describe."""

from __future__ import annotations

import argparse
import time

from ..protocol.errors import ErrorCode
from .client import Client, ToolError
from .table import dash, print_table

LIST_TRANSACTIONS, DESCRIBE_TRANSACTIONS = 66, 65


def run(args: argparse.Namespace) -> int:
    with Client(args.bootstrap, args.timeout_ms / 1000) as client:
        if args.action == "list":
            r = client.request(LIST_TRANSACTIONS, 1, {"state_filters": list(args.state or []),
                                                      "producer_id_filters": [], "duration_filter": -1})
            if r.error_code:
                raise ToolError(f"ListTransactions failed: {ErrorCode(r.error_code).name}")
            if r.unknown_state_filters:
                raise ToolError(f"unknown transaction state(s): {', '.join(r.unknown_state_filters)}")
            rows = [(t.transactional_id, "1", str(t.producer_id), t.transaction_state) for t in r.transaction_states]
            print_table(("TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "STATE"), sorted(rows))
            return 0
        return _describe(client, args.transactional_id)


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
