"""A recording TCP proxy for golden frames: it sits between real clients and a broker on 127.0.0.1,
forwards the bytes both ways unchanged, and hands every request frame a client sends (without its
4-byte size prefix) to a callback. Nothing is parsed beyond the size prefix, so what is recorded is
exactly what the client wrote.

Clients reconnect to the address Metadata gives them, so the broker must advertise the proxy's
address (advertised.listeners); the proxy is started first and told its upstream afterwards:

    with FrameProxy(on_frame) as proxy:                    # proxy.port: where clients connect
        with running_broker({"advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy.port}"}) as b:
            proxy.upstream = ("127.0.0.1", b.port)
            run_client(f"127.0.0.1:{proxy.port}")

trio runs in a background thread, as pykbroker.testing's RunningBroker; leaving the block stops it.
"""

from __future__ import annotations

import contextlib
import struct
import threading
from typing import Callable

import trio

START_TIMEOUT_S = 10
READ_BYTES = 65536


class FrameProxy:
    def __init__(self, on_frame: Callable[[bytes], None]) -> None:
        self.on_frame = on_frame
        self.upstream: tuple[str, int] | None = None
        self.port = 0
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=trio.run, args=(self._main,), name="frame-proxy", daemon=True)

    def __enter__(self) -> "FrameProxy":
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise TimeoutError("the frame proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None and self._cancel is not None and self._thread.is_alive():
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._cancel.cancel, trio_token=self._token)
        self._thread.join(timeout=10)

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            self._cancel = scope
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            self.port = listeners[0].socket.getsockname()[1]
            self._ready.set()
            await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, client: trio.SocketStream) -> None:
        if self.upstream is None:
            await client.aclose()
            return
        try:
            broker = await trio.open_tcp_stream(*self.upstream)
        except OSError:  # the broker is gone (stopping): the client sees its connection close
            await client.aclose()
            return
        async with client, broker, trio.open_nursery() as nursery:
            async def then_stop(pump: Callable[[], object]) -> None:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await pump()  # type: ignore[misc]
                nursery.cancel_scope.cancel()  # one side closed: close the other
            nursery.start_soon(then_stop, lambda: self._requests(client, broker))
            nursery.start_soon(then_stop, lambda: _copy(broker, client))

    async def _requests(self, client: trio.SocketStream, broker: trio.SocketStream) -> None:
        """Client to broker: forward each chunk as it comes, and cut the stream into frames."""
        pending = bytearray()
        while chunk := await client.receive_some(READ_BYTES):
            await broker.send_all(chunk)
            pending += chunk
            while len(pending) >= 4:
                (size,) = struct.unpack_from(">i", pending)
                if len(pending) < 4 + size:
                    break
                self.on_frame(bytes(pending[4:4 + size]))
                del pending[:4 + size]


async def _copy(source: trio.SocketStream, sink: trio.SocketStream) -> None:
    while chunk := await source.receive_some(READ_BYTES):
        await sink.send_all(chunk)
