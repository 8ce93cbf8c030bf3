"""`pykbroker produce`: one record per stdin line, like kafka-console-producer.sh / kcat -P.

Lines are read by a thread and sent in batches: a batch leaves when it holds --batch-size records,
when stdin has been quiet for --linger-ms (so an interactive or `tail -f` producer is not held
back), or at end of input. Keyed records go to the partition the Java client would pick
(murmur2 of the key); keyless ones to one partition per batch, round robin.
"""

from __future__ import annotations

import argparse
import itertools
import os
import queue
import sys
import threading
from typing import BinaryIO

from ..protocol.records import Record, build_batch
from .client import Client, ToolError, partition_for_key

_EOF = object()


def parse_headers(items: list[str]) -> list[tuple[str, bytes | None]]:
    out: list[tuple[str, bytes | None]] = []
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise ToolError(f"--header {item!r}: expected KEY=VALUE")
        out.append((key, value.encode() if sep else None))
    return out


def _reader(stream: BinaryIO | int, lines: "queue.Queue[object]") -> None:
    """Lines of `stream` into `lines`. Standard input is read from its file descriptor: a daemon
    thread blocked inside sys.stdin's buffered reader holds its lock, and Python aborts at exit
    ("could not acquire lock ... at interpreter shutdown") when the tool stops early on an error."""
    try:
        if isinstance(stream, int):
            rest = b""
            while chunk := os.read(stream, 1 << 16):
                *whole, rest = (rest + chunk).split(b"\n")
                for line in whole:
                    lines.put(line + b"\n")
            if rest:
                lines.put(rest)
        else:
            for raw in stream:
                lines.put(raw)
    finally:
        lines.put(_EOF)


def run(args: argparse.Namespace, stdin: BinaryIO | None = None) -> int:
    headers = parse_headers(args.header)
    separator = args.key_separator.encode() if args.key_separator is not None else None
    if separator == b"":
        raise ToolError("--key-separator must not be empty")
    with Client(args.bootstrap, args.timeout_ms / 1000) as client:
        partitions = client.partitions(args.topic, auto_create=True)
        if args.partition is not None and args.partition not in partitions:
            raise ToolError(f"topic {args.topic!r} has no partition {args.partition} (it has {len(partitions)})")
        round_robin = itertools.cycle(partitions)
        lines: "queue.Queue[object]" = queue.Queue(maxsize=10_000)
        source: BinaryIO | int = stdin if stdin is not None else sys.stdin.fileno()
        threading.Thread(target=_reader, args=(source, lines), daemon=True).start()
        pending: dict[int, list[Record]] = {}
        count = line_no = 0

        def flush() -> None:
            nonlocal count
            for partition, records in pending.items():
                client.produce(args.topic, partition, build_batch(records), args.acks)
                count += len(records)
            pending.clear()

        while True:
            try:
                item = lines.get(timeout=args.linger_ms / 1000)
            except queue.Empty:
                flush()
                continue
            if item is _EOF:
                break
            assert isinstance(item, bytes)
            line_no += 1
            line = item[:-1] if item.endswith(b"\n") else item
            if line.endswith(b"\r"):
                line = line[:-1]
            key: bytes | None = None
            value = line
            if separator is not None:
                key, sep, value = line.partition(separator)
                if not sep:
                    raise ToolError(f"stdin line {line_no}: no key separator {args.key_separator!r} "
                                    f"(records before it were sent)")
            if args.partition is not None:
                partition = args.partition
            elif key is not None:
                partition = partitions[partition_for_key(key, len(partitions))]
            else:
                partition = next(round_robin) if not pending else next(iter(pending))
            batch = pending.setdefault(partition, [])
            batch.append(Record(offset_delta=len(batch), key=key, value=value, headers=list(headers)))
            if sum(len(b) for b in pending.values()) >= args.batch_size:
                flush()
        flush()
    if args.verbose:
        print(f"produced {count} record(s) to {args.topic}", file=sys.stderr)
    return 0
