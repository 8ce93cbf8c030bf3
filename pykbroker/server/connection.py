"""One client connection: frames in, requests to the dispatcher, responses out in order.

Like Kafka's network layer, a connection has one request in processing at a time (Kafka mutes the
channel until the response is sent), so responses leave in request order by construction; the
client may pipeline, and the next frames wait in the socket buffer. A connection therefore holds
at most one request (its body counted in the shared queued.max.request.bytes pool until handled)
and one response (being sent), whatever the client sends or fails to read.

One exception to "one at a time": a request already applied whose response only waits on something
else (a Deferred: acks=all in a cluster, waiting for followers) lets the connection read on, up to
MAX_DEFERRED such responses, which still leave in request order. Otherwise a producer that pipelines
single-record requests could get no more than one replication round trip's worth per connection.
Those that are ready together (one high watermark move answers many) leave in one send.
"""

from __future__ import annotations

import itertools
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


class Deferred(NamedTuple):
    """A request whose effects are applied (in request order) and whose response `finish()` gives
    once what it waits for has happened. The connection reads the next requests meanwhile."""

    finish: Callable[[], Awaitable["Msg | None"]]


#: Responses a connection may have waiting (Deferred) while it reads on: bounds the memory one
#: connection holds (each is a small response), as the producer's max in-flight bounds its side.
#: A connection answers at most this many per replication round trip: with 8, a 2-core machine
#: under load (round trips of 5-15 ms) held a producer of single-record requests below 1000/s.
MAX_DEFERRED = 32
#: Ready responses sent with one send, up to about this many bytes (see _OrderedSender._ready_run).
COALESCE_BYTES = 64 << 10

#: The dispatcher answers a decoded request with a response body, or None for no response
#: (acks=0 produce), or a Throttled or Deferred one. It raises UnsupportedApiError for an api it does not serve.
Dispatch = Callable[[Request, ConnectionInfo], Awaitable["Msg | Throttled | Deferred | None"]]
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
        reader_error: Exception | None = None
        async with trio.open_nursery() as nursery:
            ordered = _OrderedSender(watched, nursery, observer)
            try:
                await _read_and_answer(reader, watched, timer, pool, dispatch, info, served, observer, ordered)
            except Exception as e:  # re-raised below: outside the nursery, not inside an ExceptionGroup
                reader_error = e
            nursery.cancel_scope.cancel()
        api_name = ordered.api_name
        if reader_error is not None:
            raise reader_error
        if ordered.error is not None:
            raise ordered.error
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


async def _read_and_answer(reader: FrameReader, watched: Any, timer: IdleTimer, pool: MemoryPool, dispatch: Dispatch,
                           info: ConnectionInfo, served: Served | None, observer: ServerObserver | None,
                           ordered: "_OrderedSender") -> None:
    """The connection's loop: read a frame, answer it, send the response (in order), until EOF."""
    with timer.scope:
        while True:
            ordered.api_name = "?"
            size = await reader.read_size()
            if size is None:
                break
            with timer.paused():  # waiting for the pool is the broker's doing, not idleness
                await pool.acquire(size)
            try:
                frame = await reader.read_body(size)
                started = time.perf_counter() if observer is not None else 0.0
                ordered.api_name = _api_name(frame)
                with timer.paused():
                    api_key, out, throttle_ms = await _answer(frame, dispatch, info, served)
                unmute_at = trio.current_time() + throttle_ms / 1000
                del frame  # the request is handled: its memory goes back before the response is sent
            finally:
                pool.release(size)
            if isinstance(out, _Later) or ordered.waiting:
                with timer.paused():  # room for one more waiting response
                    await ordered.add(api_key, size, started, out)
                    if throttle_ms > 0:
                        await ordered.drain()
            else:
                sent = await _send(watched, out) if out is not None else 0
                if observer is not None:
                    observer.on_request(api_key, size + 4, sent, time.perf_counter() - started)
            if throttle_ms > 0:
                with timer.paused():  # muted by the broker: not the client's idleness
                    await trio.sleep_until(unmute_at)
        with timer.paused():
            await ordered.drain()  # the client closed its side: answer what was read first


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
    if isinstance(response, Deferred):
        return h.api_key, _Later(response.finish, h.api_key, h.api_version, h.correlation_id), 0
    if isinstance(response, Throttled):
        response, throttle_ms = response.body, response.throttle_ms
    if response is None:
        return h.api_key, None, throttle_ms
    return h.api_key, encode_response(h.api_key, h.api_version, h.correlation_id, response), throttle_ms


class _Later(NamedTuple):
    """A Deferred response and what encoding it will need."""

    finish: Callable[[], Awaitable["Msg | None"]]
    api_key: int
    api_version: int
    correlation_id: int


class _Slot:
    """One response in the connection's order: ready once its frame (or None) is known."""

    def __init__(self, api_key: int, size: int, started: float, frame: Any = None) -> None:
        self.api_key, self.size, self.started, self.frame = api_key, size, started, frame
        self.ready = trio.Event()


class _OrderedSender:
    """Sends responses in request order while some of them (Deferred) are still being completed.

    Only used once a Deferred arrives: until every waiting response is sent, later ones queue
    behind it here. A failure (a broken socket, a handler error while finishing) is kept in
    `error` and ends the connection, as a failure on the connection's own task does."""

    def __init__(self, stream: Any, nursery: trio.Nursery, observer: ServerObserver | None) -> None:
        self._stream, self._nursery, self._observer = stream, nursery, observer
        self._queue: list[_Slot] = []
        self._changed = trio.Event()
        self._sending = False
        self.error: BaseException | None = None
        #: The request being read or answered, for the connection's log lines.
        self.api_name = "?"

    @property
    def waiting(self) -> bool:
        return bool(self._queue) or self._sending

    async def add(self, api_key: int, size: int, started: float, out: Any) -> None:
        while len(self._queue) >= MAX_DEFERRED:
            await self._wait_change()
        slot = _Slot(api_key, size, started)
        self._queue.append(slot)
        if isinstance(out, _Later):
            self._nursery.start_soon(self._finish, slot, out)
        else:
            slot.frame = out
            slot.ready.set()
        if not self._sending:
            self._sending = True
            self._nursery.start_soon(self._send_in_order)

    async def drain(self) -> None:
        while self.waiting and self.error is None:
            await self._wait_change()

    async def _wait_change(self) -> None:
        await self._changed.wait()
        self._changed = trio.Event()

    def _notify(self) -> None:
        self._changed.set()

    async def _finish(self, slot: _Slot, later: _Later) -> None:
        try:
            body = await later.finish()
            if body is not None:
                slot.frame = encode_response(later.api_key, later.api_version, later.correlation_id, body)
        except Exception as e:  # a bug while finishing ends this connection, as in a handler
            self._fail(e)
            return
        slot.ready.set()

    async def _send_in_order(self) -> None:
        try:
            while self._queue:
                await self._queue[0].ready.wait()
                run = self._ready_run()
                if len(run) == 1:
                    frame = run[0].frame
                    sent = await _send(self._stream, frame) if frame is not None else 0
                else:  # one send (one packet, one wake-up of the client) for all that is ready
                    sent = await _send(self._stream, b"".join(s.frame for s in run if s.frame is not None))
                if self._observer is not None:
                    now = time.perf_counter()
                    for s in run:
                        size = sent if len(run) == 1 else len(s.frame) if s.frame is not None else 0
                        self._observer.on_request(s.api_key, s.size + 4, size, now - s.started)
                del self._queue[:len(run)]
                self._notify()
        except Exception as e:
            self._fail(e)
        finally:
            self._sending = False
            self._notify()

    def _ready_run(self) -> "list[_Slot]":
        """The head slot and the ready ones after it, while their frames are plain bytes (no
        file-backed records) and small: sent together. When the high watermark moves, every acks=all
        response it covers is ready at once; sending them one by one took a scheduler round and a
        context switch to the client each, which held a connection to ~1000 responses/s."""
        head = self._queue[0]
        run = [head]
        if _has_holes(head.frame):
            return run
        size = len(head.frame) if head.frame is not None else 0
        for slot in itertools.islice(self._queue, 1, None):
            if not slot.ready.is_set() or _has_holes(slot.frame) or size >= COALESCE_BYTES:
                break
            run.append(slot)
            size += len(slot.frame) if slot.frame is not None else 0
        return run

    def _fail(self, e: BaseException) -> None:
        if self.error is None:
            self.error = e
        self._nursery.cancel_scope.cancel()


def _has_holes(frame: Any) -> bool:
    return bool(getattr(frame, "holes", None))


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
