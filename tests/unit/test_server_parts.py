"""The server layer's building blocks on their own: memory pool, connection quotas, rate-limited
log lines, frame reading in two steps."""

from __future__ import annotations

import logging
import struct

import pytest
import trio
import trio.testing

from pykbroker.server.framing import FrameReader, FrameTooLarge
from pykbroker.server.log_limit import RateLimitedLog
from pykbroker.server.memory_pool import MemoryPool
from pykbroker.server.quotas import ConnectionQuotas, parse_overrides


def run(fn) -> None:
    trio.run(fn, clock=trio.testing.MockClock(autojump_threshold=0))


# ---------------------------------------------------------------- memory pool

def test_pool_admits_while_room_is_left_and_waits_when_full() -> None:
    async def main() -> None:
        pool = MemoryPool(1000)
        await pool.acquire(600)
        await pool.acquire(600)  # 400 left: admitted (Kafka's non-strict pool), now over by 200
        assert pool.used == 1200
        got = []

        async def third() -> None:
            await pool.acquire(10)
            got.append(trio.current_time())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(third)
            await trio.sleep(5)
            assert got == []  # no room: waits however long
            pool.release(600)  # 600 of 1000 used: room again, the waiter goes on
        assert len(got) == 1 and pool.used == 610

    run(main)


def test_pool_reads_a_frame_larger_than_the_pool_once_it_is_empty() -> None:
    async def main() -> None:
        pool = MemoryPool(100)
        await pool.acquire(100)
        done = trio.Event()

        async def big() -> None:
            await pool.acquire(10_000)
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(big)
            await trio.sleep(1)
            assert not done.is_set()
            pool.release(100)
            await done.wait()
        assert pool.used == 10_000

    run(main)


def test_pool_serves_waiters_in_order_and_forgets_a_cancelled_one() -> None:
    async def main() -> None:
        pool = MemoryPool(10)
        await pool.acquire(10)
        order: list[str] = []

        async def want(name: str, size: int, scope: trio.CancelScope | None = None) -> None:
            with scope or trio.CancelScope():
                await pool.acquire(size)
                order.append(name)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(want, "big", 50)
            await trio.sleep(1)
            doomed = trio.CancelScope()
            nursery.start_soon(want, "cancelled", 1, doomed)
            await trio.sleep(1)
            nursery.start_soon(want, "small", 1)
            await trio.sleep(1)
            doomed.cancel()
            await trio.sleep(1)
            assert order == []
            pool.release(10)
            await trio.sleep(1)
            assert order == ["big"]  # first come first served: the small one does not overtake
            pool.release(50)
        assert order == ["big", "small"] and pool.used == 1

    run(main)


def test_unbounded_pool_never_waits() -> None:
    async def main() -> None:
        pool = MemoryPool(-1)
        for _ in range(100):
            await pool.acquire(1 << 30)
        assert pool.used == 0

    run(main)


# ---------------------------------------------------------------- connection quotas

def test_per_ip_limit_and_overrides() -> None:
    quotas = ConnectionQuotas(100, 2, {"10.0.0.9": 0, "::ffff:10.0.0.8": 5})
    assert quotas.try_open("127.0.0.1") and quotas.try_open("127.0.0.1")
    assert not quotas.try_open("127.0.0.1")
    assert quotas.try_open("127.0.0.2")
    assert not quotas.try_open("10.0.0.9")
    assert all(quotas.try_open("10.0.0.8") for _ in range(5)) and not quotas.try_open("::ffff:10.0.0.8")
    assert quotas.total == 8
    quotas.closed("127.0.0.1")
    assert quotas.try_open("127.0.0.1")


def test_wait_for_slot_blocks_at_max_connections_until_one_closes() -> None:
    async def main() -> None:
        quotas = ConnectionQuotas(2, 10)
        assert quotas.try_open("a") and quotas.try_open("b")
        accepted = trio.Event()

        async def acceptor() -> None:
            await quotas.wait_for_slot()
            accepted.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(acceptor)
            await trio.sleep(60)
            assert not accepted.is_set()
            quotas.closed("a")
            await accepted.wait()

    run(main)


def test_parse_overrides() -> None:
    assert parse_overrides("") == {}
    assert parse_overrides("127.0.0.1:5, host.example:0,[::1]:3") == {"127.0.0.1": 5, "host.example": 0, "::1": 3}
    for bad in ("127.0.0.1", "127.0.0.1:x", ":4"):
        with pytest.raises(ValueError, match="HOST:COUNT"):
            parse_overrides(bad)


# ---------------------------------------------------------------- rate-limited log

def test_rate_limited_log_writes_a_burst_then_a_count(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("test.limited"), logging.WARNING, "malformed connections",
                             burst=3, interval_s=10, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.limited"):
        for i in range(2050):
            limited.log("bad %d", i)
        assert [r.getMessage() for r in caplog.records] == ["bad 0", "bad 1", "bad 2"]
        now[0] = 5
        limited.flush_due()
        assert len(caplog.records) == 3  # interval not over yet
        now[0] = 10
        limited.flush_due()
        assert caplog.records[-1].getMessage() == "... and 2047 more malformed connections in the last 10 s"
        limited.log("again")
        assert caplog.records[-1].getMessage() == "again" and len(caplog.records) == 5


# ---------------------------------------------------------------- framing

def test_frame_reader_reads_size_then_body_and_checks_the_limit() -> None:
    async def main() -> None:
        send, receive = trio.testing.memory_stream_one_way_pair()
        reader = FrameReader(receive, 100)
        await send.send_all(struct.pack(">i", 3) + b"abc" + struct.pack(">i", 2) + b"de")
        assert await reader.read_size() == 3
        assert bytes(await reader.read_body(3)) == b"abc"
        assert bytes(await reader.read_frame() or b"") == b"de"
        await send.send_all(struct.pack(">i", 101))
        with pytest.raises(FrameTooLarge):
            await reader.read_size()

    run(main)


def test_frame_reader_eof_inside_a_frame() -> None:
    async def main() -> None:
        send, receive = trio.testing.memory_stream_one_way_pair()
        reader = FrameReader(receive, 100)
        await send.send_all(struct.pack(">i", 10) + b"abc")
        await send.aclose()
        assert await reader.read_size() == 10
        with pytest.raises(EOFError, match="7 of 14"):
            await reader.read_body(10)

    run(main)


def test_bad_per_ip_overrides_are_a_config_error() -> None:
    from pykbroker.config import BrokerConfig, ConfigError

    with pytest.raises(ConfigError, match="max.connections.per.ip.overrides entry 'a:b'"):
        BrokerConfig.from_mapping({"max.connections.per.ip.overrides": "a:b"})
    assert BrokerConfig.from_mapping({"max.connections.per.ip.overrides": "a:1"}).max_connections_per_ip_overrides == "a:1"
