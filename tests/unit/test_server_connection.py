"""One connection's limits on in-memory streams with a mock clock: idle time (nothing read or sent,
a half frame, a client that stops reading), the shared request memory pool, request header v0,
unsupported APIs, and rate-limited warnings."""

from __future__ import annotations

import logging
import struct
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

from pykbroker.protocol.frame import Request, UnsupportedApiError, decode_request, encode_request
from pykbroker.protocol.messages import response_codec
from pykbroker.protocol.primitives import Msg
from pykbroker.server.connection import ConnectionInfo, ServerLogs, serve_connection
from pykbroker.server.limits import ServerLimits
from pykbroker.server.memory_pool import MemoryPool

IDLE = ServerLimits(connections_max_idle_ms=300)
API_VERSIONS_V3 = encode_request(18, 3, 1, "t", {"client_software_name": "t", "client_software_version": "1"})


def run(fn: Any) -> None:
    trio.run(fn, clock=trio.testing.MockClock(autojump_threshold=0))


async def answer(request: Request, info: ConnectionInfo) -> Msg:
    """A dispatcher that answers anything with the response's defaults."""
    return response_codec(request.header.api_key, request.header.api_version).defaults()


class Served:
    """serve_connection on one side of a stream pair, recording when it ended."""

    def __init__(self) -> None:
        self.ended_at: float | None = None

    async def run(self, stream: Any, dispatch: Any = answer, **kw: Any) -> None:
        kw.setdefault("limits", IDLE)
        await serve_connection(stream, dispatch, 1, **kw)
        self.ended_at = trio.current_time()


def stalled_reader_pair() -> tuple[trio.StapledStream, trio.StapledStream]:
    """client -> server buffered without bound (a socket buffer the client filled); server ->
    client in lockstep, so a response send blocks until the client reads: a client that stops
    reading its socket."""
    c2s_send, c2s_receive = trio.testing.memory_stream_one_way_pair()
    s2c_send, s2c_receive = trio.testing.lockstep_stream_one_way_pair()
    return trio.StapledStream(c2s_send, s2c_receive), trio.StapledStream(s2c_send, c2s_receive)


async def read_to_eof(stream: Any) -> bytes:
    out = bytearray()
    while chunk := await stream.receive_some():
        out += chunk
    return bytes(out)


def test_a_silent_connection_is_closed_after_connections_max_idle_ms() -> None:
    async def main() -> None:
        client, server = trio.testing.memory_stream_pair()
        served = Served()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(served.run, server)
            assert await client.receive_some() == b""
        assert served.ended_at == pytest.approx(0.3)

    run(main)


def test_activity_keeps_a_connection_open() -> None:
    async def main() -> None:
        client, server = trio.testing.memory_stream_pair()
        served = Served()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(served.run, server)
            for _ in range(10):
                await trio.sleep(0.2)
                await client.send_all(API_VERSIONS_V3)
                assert (await client.receive_some())[:4] == struct.pack(">i", 12)
            assert served.ended_at is None
            assert await client.receive_some() == b""
        assert served.ended_at == pytest.approx(2.0 + 0.3)

    run(main)


def test_a_half_received_frame_does_not_hold_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        client, server = trio.testing.memory_stream_pair()
        served = Served()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(served.run, server)
            await client.send_all(API_VERSIONS_V3[:9])
            await trio.sleep(0.2)
            await client.send_all(API_VERSIONS_V3[9:12])  # a byte counts as activity
            assert await client.receive_some() == b""
        assert served.ended_at == pytest.approx(0.5)

    with caplog.at_level(logging.DEBUG, logger="pykbroker.server"):
        run(main)
    assert any("connections.max.idle.ms=300" in r.getMessage() and "12 bytes of a frame" in r.getMessage()
               for r in caplog.records)


def test_a_client_that_stops_reading_is_closed_after_connections_max_idle_ms() -> None:
    async def main() -> None:
        client, server = stalled_reader_pair()
        served = Served()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(served.run, server)
            await client.send_all(API_VERSIONS_V3)  # the response can never be sent
            await trio.sleep(5)
            assert served.ended_at == pytest.approx(0.3)
            await read_to_eof(client)  # closed (the in-memory pipe may still hand over what was offered)

    run(main)


def test_time_in_the_handler_is_not_idle_time() -> None:
    async def slow(request: Request, info: ConnectionInfo) -> Msg:
        await trio.sleep(10)
        return await answer(request, info)

    async def main() -> None:
        client, server = trio.testing.memory_stream_pair()
        served = Served()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(served.run, server, slow)
            await client.send_all(API_VERSIONS_V3)
            assert (await client.receive_some())[:4] == struct.pack(">i", 12)
            assert await client.receive_some() == b""
        assert served.ended_at == pytest.approx(10.3)

    run(main)


def test_pipelining_large_requests_without_reading_pins_one_request_and_one_response() -> None:
    frame = encode_request(3, 1, 1, "t", {"topics": [{"name": "x" * 30_000}]})
    pool = MemoryPool(10 ** 9)
    seen: list[int] = []

    async def dispatch(request: Request, info: ConnectionInfo) -> Msg:
        seen.append(pool.used)
        return await answer(request, info)

    async def main() -> None:
        client, server = stalled_reader_pair()
        served = Served()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(served.run, server, dispatch, pool=pool, limits=ServerLimits()))
            await client.send_all(frame * 50)
            await trio.sleep(60)
            # One request handled (its body was in the pool while it was), its response waits
            # for the client; no other request has been read or decoded; the pool is free again.
            assert seen == [len(frame) - 4] and pool.used == 0
            assert served.ended_at is None
            nursery.cancel_scope.cancel()

    run(main)


def test_request_bodies_wait_for_room_in_the_shared_pool() -> None:
    pool = MemoryPool(1000)
    big = encode_request(3, 1, 1, "t", {"topics": [{"name": "y" * 1500}]})
    release = trio.Event()
    log: list[tuple[str, float, int]] = []

    async def dispatch(request: Request, info: ConnectionInfo) -> Msg:
        log.append((request.header.client_id or "", trio.current_time(), pool.used))
        if request.header.client_id == "a":
            await release.wait()
        return await answer(request, info)

    async def main() -> None:
        (ca, sa), (cb, sb) = trio.testing.memory_stream_pair(), trio.testing.memory_stream_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(Served().run, sa, dispatch, pool=pool))
            nursery.start_soon(partial(Served().run, sb, dispatch, pool=pool))
            await ca.send_all(big.replace(b"\x00\x01t", b"\x00\x01a", 1))
            await trio.sleep(0.1)
            await cb.send_all(big.replace(b"\x00\x01t", b"\x00\x01b", 1))
            await trio.sleep(10)  # far beyond connections.max.idle.ms: waiting for memory is not idleness
            assert [name for name, _, _ in log] == ["a"]  # b's body waits: the pool is over its budget
            release.set()
            assert len(await ca.receive_some()) > 4
            assert len(await cb.receive_some()) > 4
            nursery.cancel_scope.cancel()
        assert [(name, used) for name, _, used in log] == [("a", len(big) - 4), ("b", len(big) - 4)]
        assert log[1][1] == pytest.approx(10.1) and pool.used == 0

    run(main)


def test_request_header_v0_is_decoded() -> None:
    frame = struct.pack(">hhii", 7, 0, 42, 1)  # ControlledShutdown v0: header without client id, broker_id=1
    request = decode_request(frame)
    assert request.header.correlation_id == 42 and request.header.client_id is None
    assert request.header.header_version == 0 and request.body.broker_id == 1


@pytest.mark.parametrize("frame", [
    struct.pack(">hhii", 7, 0, 42, 1),                       # ControlledShutdown v0: not served
    struct.pack(">hhih", 4, 7, 1, -1) + b"\x00" * 20,        # LeaderAndIsr: not served
    struct.pack(">hhih", 999, 0, 1, -1),                      # unknown api key
    struct.pack(">hhih", 3, 99, 1, -1),                       # Metadata v99
], ids=["controlled-shutdown-v0", "leader-and-isr", "unknown-key", "unknown-version"])
def test_an_api_not_served_closes_the_connection_with_an_info_line(frame: bytes,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    def served(api_key: int, api_version: int) -> bool:
        return api_key not in (4, 7)

    async def main() -> None:
        client, server = trio.testing.memory_stream_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(Served().run, server, answer, served=served))
            await client.send_all(struct.pack(">i", len(frame)) + frame)
            assert await client.receive_some() == b""

    with caplog.at_level(logging.DEBUG, logger="pykbroker"):
        run(main)
    lines = [r for r in caplog.records if "closing connection" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO and lines[0].exc_info is None


def test_malformed_connection_warnings_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    logs = ServerLogs(burst=3, interval_s=10)

    async def main() -> None:
        for _ in range(50):
            client, server = trio.testing.memory_stream_pair()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(partial(Served().run, server, answer, logs=logs))
                await client.send_all(struct.pack(">ihhi", 8, 3, 9, 1))  # Metadata v9 without its client id
                assert await client.receive_some() == b""

    with caplog.at_level(logging.WARNING, logger="pykbroker"):
        run(main)
        logs.malformed._window_start -= 10  # the interval is over
        logs.flush_due()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4 and all("malformed request (METADATA v9)" in m for m in messages[:3])
    assert messages[3].startswith("... and 47 more malformed connections in the last")


def test_a_throttled_response_goes_out_at_once_and_mutes_the_connection() -> None:
    """KIP-219, as Kafka's channel muting: the response carrying the throttle time is sent at once;
    the next request is not read until the throttle time has passed; muted time is not idleness."""
    from pykbroker.server.connection import Throttled

    async def throttling(request: Request, info: ConnectionInfo) -> Throttled:
        return Throttled(await answer(request, info), 500)  # 0.5 s, above the 0.3 s idle limit

    async def main() -> None:
        client, server = trio.testing.memory_stream_pair()
        answered: list[float] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(Served().run, server, throttling))
            await client.send_all(API_VERSIONS_V3 + API_VERSIONS_V3)  # pipelined
            for _ in range(2):
                size = struct.unpack(">i", await client.receive_some(4))[0]
                received = 0
                while received < size:
                    received += len(await client.receive_some(size - received))
                answered.append(trio.current_time())
            nursery.cancel_scope.cancel()
        assert answered == [pytest.approx(0), pytest.approx(0.5)]

    run(main)


class CountingStream(trio.abc.HalfCloseableStream):
    """A stream that counts its sends (each would be one syscall and one packet on a socket)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.sends = inner, 0

    async def send_all(self, data: Any) -> None:
        self.sends += 1
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_deferred_responses_ready_together_leave_in_order_in_one_send() -> None:
    """acks=all responses whose wait ends at once (one high watermark move) are sent together,
    still in request order; the connection reads on while they wait."""
    from pykbroker.server.connection import Deferred

    replicated = trio.Event()

    async def deferring(request: Request, info: ConnectionInfo) -> Deferred:
        async def finish() -> Msg:
            await replicated.wait()
            return await answer(request, info)
        return Deferred(finish)

    async def main() -> None:
        client, server = trio.testing.memory_stream_pair()
        counted = CountingStream(server)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(Served().run, counted, deferring))
            await client.send_all(b"".join(encode_request(18, 3, cid, "t", {
                "client_software_name": "t", "client_software_version": "1"}) for cid in range(5)))
            await trio.testing.wait_all_tasks_blocked()
            assert counted.sends == 0
            replicated.set()
            ids = []
            while len(ids) < 5:
                size, cid = struct.unpack(">ii", await client.receive_some(8))
                body = size - 4
                while body:
                    body -= len(await client.receive_some(body))
                ids.append(cid)
            nursery.cancel_scope.cancel()
        assert ids == [0, 1, 2, 3, 4]
        assert counted.sends == 1

    run(main)
