"""The TCP listener: accepts connections and runs each in the server's nursery."""

from __future__ import annotations

import itertools
import logging
import socket

import trio

from .connection import Dispatch, ServerObserver, serve_connection

log = logging.getLogger("pykbroker.server")


async def serve(dispatch: Dispatch, host: str, port: int, max_request_bytes: int,
                *, observer: ServerObserver | None = None,
                task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED) -> None:
    """Listen on host:port (0 picks a free port); reports the bound (host, port) via task_status.
    `observer` (optional) sees connections and requests, e.g. for metrics."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    for listener in listeners:
        listener.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    bound = listeners[0].socket.getsockname()[:2]
    ids = itertools.count(1)

    async def handle(stream: trio.SocketStream) -> None:
        stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await serve_connection(stream, dispatch, max_request_bytes, next(ids), observer)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handle, listeners)
        task_status.started((bound[0], bound[1]))
