"""One client connection: frames in, requests to the dispatcher, responses out in order.

Like Kafka's network layer, a connection has one request in processing at a time (Kafka mutes the
channel until the response is sent), so responses leave in request order by construction; the
client may pipeline, and the next frames wait in the socket buffer. A connection therefore holds
at most one request (its body counted in the shared queued.max.request.bytes pool until handled)
and one response (being sent), whatever the client sends or fails to read.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Awaitable, Callable, NamedTuple, Protocol

import trio

from ..protocol.errors import ErrorCode
from ..protocol.frame import API_VERSIONS, Request, UnsupportedApiError, decode_request, encode_response, peek_header
from ..protocol.messages import API_NAMES
from ..protocol.primitives import DecodeError, EncodeError, Msg
from .framing import FrameReader, FrameTooLarge
from .send import send_response
from .idle import ActivityStream, IdleTimer
from .limits import ServerLimits
from .log_limit import RateLimitedLog
from .memory_pool import MemoryPool

log = logging.getLogger("pykbroker.server")


class ConnectionInfo(NamedTuple):
    peer: str
    connection_id: int


class Throttled(NamedTuple):
    """A response (None: none is sent, as for acks=0) after which the connection is muted: no
    further request is read from it for `throttle_ms`. This is how Kafka enforces client quotas
    (KIP-219): the response goes out at once carrying throttle_time_ms, and the channel stays muted
    until the throttle time has passed, counted from when the request was answered."""

    body: Msg | None
    throttle_ms: int


#: The dispatcher answers a decoded request with a response body, or None for no response
#: (acks=0 produce), or a Throttled one. It raises UnsupportedApiError for an api it does not serve.
Dispatch = Callable[[Request, ConnectionInfo], Awaitable["Msg | Throttled | None"]]
#: Whether the dispatcher serves (api_key, api_version): asked before a request's body is decoded.
Served = Callable[[int, int], bool]


class ServerObserver(Protocol):
    """Optional hooks for instrumentation (pykbroker.metrics implements them); called on the
    connection's task, so they must be quick and must not raise. None means no observer, no cost."""

    def on_connect(self, info: ConnectionInfo) -> None: ...

    def on_disconnect(self, info: ConnectionInfo) -> None: ...

    def on_request(self, api_key: int, bytes_in: int, bytes_out: int, seconds: float) -> None:
        """One answered (or acks=0) request: frame sizes with their 4-byte size prefix, and the
        time from a whole frame read to its response sent."""


class ServerLogs:
    """The per-connection log lines a scan or a broken client can cause, each rate-limited."""

    def __init__(self, *, burst: int = 5, interval_s: float = 10.0) -> None:
        self.malformed = RateLimitedLog(log, logging.WARNING, "malformed connections", burst=burst,
                                        interval_s=interval_s)
        self.unsupported = RateLimitedLog(log, logging.INFO, "connections closed for an unsupported api",
                                          burst=burst, interval_s=interval_s)
        self.rejected = RateLimitedLog(log, logging.INFO, "connections rejected over max.connections.per.ip",
                                       burst=burst, interval_s=interval_s)

    def flush_due(self) -> None:
        for limited in (self.malformed, self.unsupported, self.rejected):
            limited.flush_due()


async def _send(stream: Any, out: Any) -> int:
    """The one place a response frame leaves (idle limits are around its callers); returns bytes sent."""
    return await send_response(stream, out)


async def serve_connection(stream: trio.SocketStream, dispatch: Dispatch, connection_id: int, *,
                           limits: ServerLimits = ServerLimits(), pool: MemoryPool | None = None,
                           logs: ServerLogs | None = None, observer: ServerObserver | None = None,
                           served: Served | None = None) -> None:
    peer = _peer_name(stream)
    info = ConnectionInfo(peer, connection_id)
    pool = pool if pool is not None else MemoryPool(limits.queued_max_request_bytes)
    logs = logs if logs is not None else ServerLogs()
    timer = IdleTimer(limits.connections_max_idle_ms / 1000)
    watched = ActivityStream(stream, timer)
    reader = FrameReader(watched, limits.max_request_bytes)
    api_name = "?"
    if observer is not None:
        observer.on_connect(info)
    try:
        with timer.scope:
            while True:
                api_name = "?"
                size = await reader.read_size()
                if size is None:
                    return
                with timer.paused():  # waiting for the pool is the broker's doing, not idleness
                    await pool.acquire(size)
                try:
                    frame = await reader.read_body(size)
                    started = time.perf_counter() if observer is not None else 0.0
                    api_name = _api_name(frame)
                    with timer.paused():
                        api_key, out, throttle_ms = await _answer(frame, dispatch, info, served)
                    unmute_at = trio.current_time() + throttle_ms / 1000
                    del frame  # the request is handled: its memory goes back before the response is sent
                finally:
                    pool.release(size)
                sent = 0
                if out is not None:
                    sent = await _send(watched, out)
                if observer is not None:
                    observer.on_request(api_key, size + 4, sent, time.perf_counter() - started)
                if throttle_ms > 0:
                    with timer.paused():  # muted by the broker: not the client's idleness
                        await trio.sleep_until(unmute_at)
        if timer.expired:
            log.debug("closing connection from %s: nothing read or sent for connections.max.idle.ms=%d "
                      "(%d bytes of a frame buffered)", peer, limits.connections_max_idle_ms, reader.buffered)
    except UnsupportedApiError as e:
        # Kafka closes the connection on a request header it does not serve (ApiVersions excepted: see _answer).
        logs.unsupported.log("closing connection from %s (client %s): %s", peer, e.header.client_id, e)
    except (DecodeError, FrameTooLarge, EOFError) as e:
        logs.malformed.log("closing connection from %s: malformed request (%s): %s", peer, api_name, e)
    except EncodeError as e:
        log.error("closing connection from %s: could not encode the %s response: %s", peer, api_name, e)
    except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
        pass
    except Exception:  # a bug in a handler ends this connection, never the broker
        log.exception("closing connection from %s: internal error while serving %s", peer, api_name)
    finally:
        if observer is not None:
            observer.on_disconnect(info)
        with trio.move_on_after(1) as scope:
            scope.shield = True
            await stream.aclose()


async def _answer(frame: memoryview, dispatch: Dispatch, info: ConnectionInfo,
                  served: Served | None) -> tuple[int, Any, int]:
    """Decode, dispatch and encode one request: (api key, response frame or None, ms to mute for)."""
    try:
        request = decode_request(frame, served)
    except UnsupportedApiError as e:
        h = e.header
        if h.api_key != API_VERSIONS:
            raise
        # KIP-511: answer an ApiVersions of unknown version with a v0 response carrying
        # UNSUPPORTED_VERSION and, as Apache Kafka does, only ApiVersions' own range: the
        # client retries with a version it and we both know, then learns the other ranges.
        fallback = await dispatch(Request(h._replace(api_version=0), Msg()), info)
        assert fallback is not None and not isinstance(fallback, Throttled)
        fallback["error_code"] = ErrorCode.UNSUPPORTED_VERSION
        fallback["api_keys"] = [k for k in fallback["api_keys"] if k["api_key"] == API_VERSIONS]
        return h.api_key, encode_response(API_VERSIONS, 0, h.correlation_id, fallback), 0
    h = request.header
    if request.trailing_bytes:
        log.debug("%s v%d from %s (%s) had %d bytes after its body (ignored, as Kafka does)",
                  API_NAMES[h.api_key], h.api_version, info.peer, h.client_id, request.trailing_bytes)
    response = await dispatch(request, info)
    throttle_ms = 0
    if isinstance(response, Throttled):
        response, throttle_ms = response.body, response.throttle_ms
    if response is None:
        return h.api_key, None, throttle_ms
    return h.api_key, encode_response(h.api_key, h.api_version, h.correlation_id, response), throttle_ms


def _api_name(frame: memoryview) -> str:
    """"Metadata v12" from the header's first bytes, for log lines; "?" when too short."""
    try:
        api_key, api_version, _ = peek_header(frame)
    except DecodeError:
        return "?"
    return f"{API_NAMES.get(api_key, api_key)} v{api_version}"


def _peer_name(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
        return f"{host}:{port}"
    except (OSError, AttributeError):  # AttributeError: not a socket (in-memory streams in tests)
        return "?"
