"""Valid request headers with random or corrupted bodies, for every api and version Kafka defines,
through the server's own decode -> dispatch -> encode path on a real broker: malformed input
always ends as a clean DecodeError (the connection is closed), never as an internal error."""

from __future__ import annotations

import logging
import random
import struct
from pathlib import Path

import pytest
import trio
import trio.testing

from pykbroker.broker import Broker
from pykbroker.config import BrokerConfig
from pykbroker.handlers import HANDLERS
from pykbroker.protocol.frame import request_header_version
from pykbroker.protocol.messages import API_VERSION_RANGES, request_codec
from pykbroker.protocol.primitives import DecodeError, EncodeError
from pykbroker.server.connection import ConnectionInfo, _answer

BODIES_PER_SERVED_VERSION = 2000
BODIES_PER_UNSERVED_VERSION = 20
SERVED = [(k, v) for k, h in sorted(HANDLERS.items()) for v in range(h.min_version, h.max_version + 1)]
UNSERVED = [(k, v) for k, (low, high) in sorted(API_VERSION_RANGES.items()) for v in range(low, high + 1)
            if (k, v) not in set(SERVED)]


def header(api_key: int, version: int) -> bytes:
    hv = request_header_version(api_key, version)
    out = struct.pack(">hhi", api_key, version, 7)
    if hv >= 1:
        out += struct.pack(">h", 4) + b"fuzz"
    if hv == 2:
        out += b"\x00"
    return out


def bodies(api_key: int, version: int, count: int) -> list[bytes]:
    """Half random bytes (many short ones), half a valid default body with a few bytes changed."""
    rnd = random.Random(api_key * 1000 + version)
    codec = request_codec(api_key, version)
    try:
        valid = bytes(codec.encode(codec.defaults()))
    except EncodeError:  # a default the spec cannot write (a required struct left None): random only
        valid = b""
    out = []
    for i in range(count):
        if i % 2:
            body = bytearray(valid)
            for _ in range(rnd.randint(1, 4)):
                if body:
                    body[rnd.randrange(len(body))] = rnd.choice((0, 1, 0x7F, 0x80, 0xFF, rnd.getrandbits(8)))
            body += rnd.randbytes(rnd.choice((0, 0, 4, 16)))
        else:
            body = bytearray(rnd.randbytes(rnd.randint(0, rnd.choice((0, 2, 8, 32, 128, 1024)))))
        out.append(bytes(body))
    return out


def test_random_bodies_never_hit_an_internal_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    failures: list[str] = []
    counts = {"answered": 0, "refused": 0}

    async def main() -> None:
        broker = Broker(BrokerConfig.from_mapping({"listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": str(tmp_path)}))
        info = ConnectionInfo("127.0.0.1:1", 1)
        try:
            for pairs, count in ((SERVED, BODIES_PER_SERVED_VERSION), (UNSERVED, BODIES_PER_UNSERVED_VERSION)):
                for api_key, version in pairs:
                    for body in bodies(api_key, version, count):
                        try:
                            with trio.move_on_after(5):  # long polls and group waits: virtual time
                                await _answer(memoryview(header(api_key, version) + body), broker.dispatch, info,
                                              broker.serves)
                            counts["answered"] += 1
                        except DecodeError:
                            counts["refused"] += 1
                        except Exception as e:  # noqa: BLE001 - what the test looks for
                            failures.append(f"{api_key} v{version} body={body.hex()}: {type(e).__name__}: {e}")
        finally:
            broker.close()

    with caplog.at_level(logging.ERROR, logger="pykbroker"):
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    # The broker's own errors: a client left running by an earlier test (its thread still logging
    # "Connection failed") is not this broker's doing.
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("pykbroker")]
    assert failures == [] and errors == [], (failures[:20], errors[:20])
    assert counts["answered"] > 1000 and counts["refused"] > 1000  # both paths were exercised
