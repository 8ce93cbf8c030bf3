"""A broker's own connection to another broker (the replica fetcher's): one request at a time over
a trio stream, encoded and decoded with pykbroker's codec."""

from __future__ import annotations

import struct
from typing import Any, Callable

import trio

from ..protocol.frame import decode_response, encode_request
from ..protocol.primitives import Msg

#: Largest response frame accepted from a peer (a fetch is bounded by replica.fetch.response.max.bytes).
MAX_FRAME = 256 << 20


class PeerError(Exception):
    """The peer closed the connection or sent a frame that does not decode."""


class PeerConnection:
    def __init__(self, stream: trio.SocketStream, client_id: str) -> None:
        self._stream = stream
        self._client_id = client_id
        self._correlation_id = 0
        self._buffer = bytearray()

    @classmethod
    async def connect(cls, host: str, port: int, client_id: str) -> "PeerConnection":
        return cls(await trio.open_tcp_stream(host, port), client_id)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def request(self, api_key: int, version: int, body: Any) -> Msg:
        self._correlation_id += 1
        await self._stream.send_all(encode_request(api_key, version, self._correlation_id, self._client_id, body))
        size = struct.unpack(">i", await self._exactly(4))[0]
        if not 0 < size <= MAX_FRAME:
            raise PeerError(f"response frame of {size} bytes")
        correlation_id, response = decode_response(api_key, version, await self._exactly(size))
        if correlation_id != self._correlation_id:
            raise PeerError(f"response to request {correlation_id}, expected {self._correlation_id}")
        return response

    async def _exactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = await self._stream.receive_some(max(65536, n - len(self._buffer)))
            if not chunk:
                raise PeerError("connection closed by the peer")
            self._buffer += chunk
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out


class PeerPool:
    """The broker's own requests to other brokers (transaction markers, a transaction's partition
    checks): one connection per broker, reused, one request at a time on each. Any failure closes
    that connection and is raised as PeerError; the caller decides whether to retry."""

    def __init__(self, address: Callable[[int], tuple[str, int] | None], client_id: str) -> None:
        self._address = address
        self._client_id = client_id
        self._conns: dict[int, PeerConnection] = {}
        self._locks: dict[int, trio.Lock] = {}

    async def request(self, broker_id: int, api_key: int, version: int, body: Any, timeout_s: float) -> Msg:
        async with self._locks.setdefault(broker_id, trio.Lock()):
            conn = self._conns.get(broker_id)
            try:
                with trio.fail_after(timeout_s):
                    if conn is None:
                        address = self._address(broker_id)
                        if address is None:
                            raise PeerError(f"broker {broker_id} is not alive")
                        conn = self._conns[broker_id] = await PeerConnection.connect(*address, self._client_id)
                    return await conn.request(api_key, version, body)
            except (OSError, PeerError, trio.TooSlowError, trio.BrokenResourceError) as e:
                self._conns.pop(broker_id, None)
                if conn is not None:
                    with trio.CancelScope(shield=True):
                        await conn.aclose()
                raise PeerError(f"broker {broker_id}: {e!r}") from e

    async def aclose(self) -> None:
        for conn in self._conns.values():
            with trio.CancelScope(shield=True):
                await conn.aclose()
        self._conns.clear()
