"""Codec speed, run by hand:  python bench/codec.py

Prints microseconds per decode and encode for the messages on the broker's hot paths, plus a
hand-written `struct` parser of the same Produce request so the gap to the floor is visible.
"""

from __future__ import annotations

import struct
import timeit
import uuid
from typing import Any, Callable

from pykbroker.protocol.frame import decode_request, encode_request
from pykbroker.protocol.messages import request_codec, response_codec


def per_call_us(fn: Callable[[], Any], min_time: float = 0.5) -> float:
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    best = min(timer.repeat(repeat=5, number=max(number, 1)))
    return best / max(number, 1) * 1e6


def produce_v9() -> dict[str, Any]:
    return {"transactional_id": None, "acks": -1, "timeout_ms": 30000, "topic_data": [
        {"name": "bench-topic", "partition_data": [{"index": 0, "records": b"\x00" * (1 << 20)}]}]}


def fetch_v12(partitions: int) -> dict[str, Any]:
    return {"throttle_time_ms": 0, "error_code": 0, "session_id": 0, "responses": [
        {"topic": "bench-topic", "partitions": [
            {"partition_index": i, "error_code": 0, "high_watermark": 1000, "last_stable_offset": 1000,
             "log_start_offset": 0, "aborted_transactions": None, "preferred_read_replica": -1,
             "records": b"\x00" * 1024} for i in range(partitions)]}]}


def metadata_v12(partitions: int) -> dict[str, Any]:
    return {"brokers": [{"node_id": 1, "host": "127.0.0.1", "port": 9092, "rack": None}],
            "cluster_id": "pykbroker", "controller_id": 1, "topics": [
                {"error_code": 0, "name": "bench-topic", "topic_id": uuid.uuid4(), "is_internal": False,
                 "partitions": [{"error_code": 0, "partition_index": i, "leader_id": 1, "leader_epoch": 0,
                                 "replica_nodes": [1], "isr_nodes": [1], "offline_replicas": []}
                                for i in range(partitions)],
                 "topic_authorized_operations": -2147483648}]}


_HEAD = struct.Struct(">hhih")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")


def struct_baseline_produce_v9(frame: memoryview) -> tuple[Any, ...]:
    """The floor: a hand-written parser of exactly this request shape (1 topic, 1 partition)."""
    api_key, version, corr, cid_len = _HEAD.unpack_from(frame, 0)
    pos = 10 + cid_len + 1  # header: client id + empty tag buffer
    n = frame[pos] - 1  # transactional id (compact nullable string)
    pos += 1 + max(n, 0)
    acks, timeout = struct.unpack_from(">hi", frame, pos)
    pos += 6
    pos += 1  # topics count
    name_len = frame[pos] - 1
    name = str(frame[pos + 1:pos + 1 + name_len], "utf-8")
    pos += 1 + name_len + 1
    index = _I32.unpack_from(frame, pos)[0]
    pos += 4
    length = 0
    shift = 0
    while True:
        b = frame[pos]
        pos += 1
        length |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
    records = frame[pos:pos + length - 1]
    return acks, timeout, name, index, records


def main() -> None:
    rows: list[tuple[str, float]] = []
    req = encode_request(0, 9, 1, "bench", produce_v9())
    frame = memoryview(req)[4:]
    codec = request_codec(0, 9)
    body = codec.encode(produce_v9())
    rows.append(("ApiVersions v3 request decode", per_call_us(
        lambda f=memoryview(encode_request(18, 3, 1, "c", {"client_software_name": "x", "client_software_version": "1"}))[4:]: decode_request(f))))
    api_versions = {"api_keys": [{"api_key": k, "min_version": 0, "max_version": 9} for k in range(60)]}
    avc = response_codec(18, 3)
    rows.append(("ApiVersions v3 response encode (60 keys)", per_call_us(lambda: avc.encode(api_versions))))
    rows.append(("Produce v9 request decode (1 MiB batch, body)", per_call_us(lambda: codec.decode(body))))
    rows.append(("Produce v9 request decode (whole frame + header)", per_call_us(lambda: decode_request(frame))))
    rows.append(("Produce v9 request encode (1 MiB batch)", per_call_us(lambda: codec.encode(produce_v9()))))
    rows.append(("  struct baseline: Produce v9 decode", per_call_us(lambda: struct_baseline_produce_v9(frame))))
    fetch = response_codec(1, 12)
    fv = fetch_v12(10)
    fb = bytes(fetch.encode(fv))
    rows.append(("Fetch v12 response encode (10 partitions x 1 KiB)", per_call_us(lambda: fetch.encode(fv))))
    rows.append(("Fetch v12 response decode (10 partitions)", per_call_us(lambda: fetch.decode(fb))))
    meta = response_codec(3, 12)
    mv = metadata_v12(100)
    mb = bytes(meta.encode(mv))
    rows.append(("Metadata v12 response encode (100 partitions)", per_call_us(lambda: meta.encode(mv))))
    rows.append(("Metadata v12 response decode (100 partitions)", per_call_us(lambda: meta.decode(mb))))
    width = max(len(name) for name, _ in rows)
    for name, us in rows:
        print(f"{name:<{width}}  {us:9.1f} us")


if __name__ == "__main__":
    main()
