"""`pykbroker consume`: print a topic's records to stdout, like kafka-console-consumer.sh / kcat -C.

Without --group it reads from the end (or from the start with --from-beginning). With --group G it
starts from G's committed offsets (partitions without one: as without a group) and, when it stops
(--max-messages, --timeout-ms, Ctrl-C), commits how far it got with a "simple" commit
(generation -1, no member id). It does not join the group: no rebalancing, all partitions are
read, and Kafka (like pykbroker) refuses that commit while the group has active members.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import BinaryIO

from ..protocol.errors import ErrorCode
from ..protocol.records import MAGIC_V2, TIMESTAMP_LOG_APPEND_TIME, decode_records, iter_batches
from .client import EARLIEST, LATEST, Client, ToolError, check

POLL_MS = 500


def compile_format(fmt: str) -> list[str]:
    """Split --format into literals and %-tokens; \\n, \\t and \\\\ are escapes."""
    fmt = fmt.replace("\\\\", "\0").replace("\\n", "\n").replace("\\t", "\t").replace("\0", "\\")
    parts: list[str] = []
    i = 0
    literal = ""
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%" and i + 1 < len(fmt):
            token = fmt[i + 1]
            if token == "%":
                literal += "%"
            elif token in FIELDS:
                if literal:
                    parts.append(literal)
                    literal = ""
                parts.append("%" + token)
            else:
                raise ToolError(f"--format {fmt!r}: unknown field %{token} (known: {' '.join('%' + f for f in FIELDS)})")
            i += 2
            continue
        literal += ch
        i += 1
    if literal:
        parts.append(literal)
    return parts


FIELDS = {
    "t": "topic", "p": "partition", "o": "offset", "k": "key", "v": "value", "T": "timestamp (ms)",
    "h": "headers as k=v,k=v", "K": "key length", "S": "value length",
}


def _render(parts: list[str], topic: str, partition: int, offset: int, timestamp: int,
            key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes | None]]) -> bytes:
    out = bytearray()
    for part in parts:
        if part[0] != "%" or len(part) != 2:
            out += part.encode()
            continue
        f = part[1]
        if f == "v":
            out += value or b""
        elif f == "k":
            out += key or b""
        elif f == "t":
            out += topic.encode()
        elif f == "p":
            out += str(partition).encode()
        elif f == "o":
            out += str(offset).encode()
        elif f == "T":
            out += str(timestamp).encode()
        elif f == "h":
            out += b",".join(k.encode() + (b"=" + v if v is not None else b"") for k, v in headers)
        elif f == "K":
            out += str(-1 if key is None else len(key)).encode()
        elif f == "S":
            out += str(-1 if value is None else len(value)).encode()
    out += b"\n"
    return bytes(out)


def run(args: argparse.Namespace, stdout: BinaryIO | None = None) -> int:
    out = stdout or sys.stdout.buffer
    parts = compile_format(args.format)
    reset = EARLIEST if args.from_beginning else LATEST
    with Client(args.bootstrap, args.timeout_ms / 1000) as client:
        partitions = client.partitions(args.topic)
        if args.partition is not None:
            if args.partition not in partitions:
                raise ToolError(f"topic {args.topic!r} has no partition {args.partition}")
            partitions = [args.partition]
        positions: dict[int, int] = {}
        if args.group:
            committed = client.committed(args.group, {args.topic: partitions})
            positions = {p: o for (t, p), o in committed.items() if t == args.topic and o >= 0}
        missing = [p for p in partitions if p not in positions]
        positions.update(client.list_offsets(args.topic, missing, reset))
        counter = [0]
        failure: ToolError | None = None
        try:
            _loop(client, args, parts, positions, reset, out, counter)
        except KeyboardInterrupt:
            pass
        except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        except ToolError as e:
            failure = e
        if args.group:
            try:
                client.commit(args.group, {(args.topic, p): o for p, o in positions.items()})
            except ToolError as e:
                print(f"pykbroker consume: offsets not committed: {e}", file=sys.stderr)
                failure = failure or e
    if failure is not None:
        raise failure
    print(f"Processed a total of {counter[0]} messages", file=sys.stderr)
    return 0


def _loop(client: Client, args: argparse.Namespace, parts: list[str], positions: dict[int, int],
          reset: int, out: BinaryIO, counter: list[int]) -> None:
    idle_ms = args.idle_timeout_ms
    idle_deadline = time.monotonic() + idle_ms / 1000 if idle_ms is not None else None
    while True:
        wait_ms = POLL_MS
        if idle_deadline is not None:
            wait_ms = max(0, min(POLL_MS, int((idle_deadline - time.monotonic()) * 1000)))
        got = 0
        for part in client.fetch(args.topic, positions, wait_ms):
            p = part.partition_index
            if part.error_code == ErrorCode.OFFSET_OUT_OF_RANGE:
                positions[p] = client.list_offsets(args.topic, [p], reset)[p]
                continue
            check(part.error_code, f"fetch {args.topic}-{p}")
            data = memoryview(bytes(part.records or b""))
            for pos, h in iter_batches(data):
                if h.next_offset <= positions[p]:
                    continue
                if h.magic != MAGIC_V2:
                    raise ToolError(f"{args.topic}-{p} offset {h.base_offset}: "
                                    f"message format v{h.magic} is not supported by this tool")
                if h.is_control:
                    positions[p] = h.next_offset
                    continue
                for rec in decode_records(data[pos:pos + h.size]):
                    offset = h.base_offset + rec.offset_delta
                    if offset < positions[p]:
                        continue
                    timestamp = h.max_timestamp if h.timestamp_type == TIMESTAMP_LOG_APPEND_TIME else h.base_timestamp + rec.timestamp_delta
                    out.write(_render(parts, args.topic, p, offset, timestamp, rec.key, rec.value, rec.headers))
                    positions[p] = offset + 1
                    got += 1
                    counter[0] += 1
                    if args.max_messages is not None and counter[0] >= args.max_messages:
                        out.flush()
                        return
                positions[p] = max(positions[p], h.next_offset)
        out.flush()
        if got and idle_ms is not None:
            idle_deadline = time.monotonic() + idle_ms / 1000
        if idle_deadline is not None and time.monotonic() >= idle_deadline:
            return
