"""The TCP listener: accepts connections within the connection quotas and runs each in the
server's nursery, all sharing one request memory pool."""

from __future__ import annotations

import errno
import itertools
import logging
import socket
from typing import Callable

import trio

from .connection import Dispatch, Served, ServerLogs, ServerObserver, serve_connection
from .limits import ServerLimits
from .memory_pool import MemoryPool
from .quotas import ConnectionQuotas, resolve_overrides

log = logging.getLogger("pykbroker.server")

#: accept() errors that mean "out of resources for now": wait and retry, as trio.serve_listeners does.
_RESOURCE_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_RESOURCE_SLEEP_S = 0.1
LOG_FLUSH_S = 10.0


async def serve(dispatch: Dispatch, host: str, port: int, limits: ServerLimits = ServerLimits(),
                *, observer: ServerObserver | None = None, logs: ServerLogs | None = None,
                served: Served | None = None,
                task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED) -> None:
    """Listen on host:port (0 picks a free port); reports the bound (host, port) via task_status.
    `observer` (optional) sees connections and requests, e.g. for metrics; `served` (optional)
    says which (api key, version) pairs `dispatch` serves, so others are refused before their body."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    for listener in listeners:
        listener.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    bound = listeners[0].socket.getsockname()[:2]
    quotas = ConnectionQuotas(limits.max_connections, limits.max_connections_per_ip,
                              await resolve_overrides(dict(limits.max_connections_per_ip_overrides)))
    pool = MemoryPool(limits.queued_max_request_bytes)
    logs = logs if logs is not None else ServerLogs()
    ids = itertools.count(1)

    async def handle(stream: trio.SocketStream, ip: str) -> None:
        try:
            stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await serve_connection(stream, dispatch, next(ids), limits=limits, pool=pool, logs=logs,
                                   observer=observer, served=served)
        finally:
            quotas.closed(ip)

    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(_accept_loop, listener, quotas, logs, nursery.start_soon, handle)
        nursery.start_soon(_flush_logs, logs)
        task_status.started((bound[0], bound[1]))


async def _accept_loop(listener: trio.SocketListener, quotas: ConnectionQuotas, logs: ServerLogs,
                       start_soon: Callable[..., None], handle: Callable[..., object]) -> None:
    """Kafka's acceptor: wait for a slot under max.connections before accepting (the rest wait in
    the kernel's backlog); accept and close at once a connection over its IP's limit."""
    async with listener:
        while True:
            await quotas.wait_for_slot()
            try:
                stream = await listener.accept()
            except OSError as e:
                if e.errno not in _RESOURCE_ERRORS:
                    raise
                log.error("accept failed (%s); retrying in %.0f ms", e, _RESOURCE_SLEEP_S * 1000)
                await trio.sleep(_RESOURCE_SLEEP_S)
                continue
            ip = _peer_ip(stream)
            if not quotas.try_open(ip):
                logs.rejected.log("Rejected connection from %s, address already has the configured maximum "
                                  "of %d connections.", ip, quotas.limit_for(ip))
                await trio.aclose_forcefully(stream)
                continue
            start_soon(handle, stream, ip)


async def _flush_logs(logs: ServerLogs) -> None:
    """Report suppressed log lines even when the flood that caused them has stopped."""
    while True:
        await trio.sleep(LOG_FLUSH_S)
        logs.flush_due()


def _peer_ip(stream: trio.SocketStream) -> str:
    try:
        return str(stream.socket.getpeername()[0])
    except OSError:
        return "?"
