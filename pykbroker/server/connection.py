"""One client connection: frames in, requests to the dispatcher, responses out in order.

Like Kafka's network layer, a connection has one request in processing at a time (Kafka mutes the
channel until the response is sent), so responses leave in request order by construction; the
client may pipeline, and the next frames wait in the socket buffer.
"""

from __future__ import annotations

import logging
import time
from typing import Awaitable, Callable, NamedTuple, Protocol

import trio

from ..protocol.errors import ErrorCode
from ..protocol.frame import API_VERSIONS, Request, UnsupportedApiError, decode_request, encode_response
from ..protocol.messages import API_NAMES
from ..protocol.primitives import DecodeError, EncodeError, Msg
from .framing import FrameReader, FrameTooLarge
from .send import send_response

log = logging.getLogger("pykbroker.server")


class ConnectionInfo(NamedTuple):
    peer: str
    connection_id: int


#: The dispatcher answers a decoded request with a response body, or None for no response
#: (acks=0 produce). It raises UnsupportedApiError for an api it does not serve.
Dispatch = Callable[[Request, ConnectionInfo], Awaitable[Msg | None]]


class ServerObserver(Protocol):
    """Optional hooks for instrumentation (pykbroker.metrics implements them); called on the
    connection's task, so they must be quick and must not raise. None means no observer, no cost."""

    def on_connect(self, info: ConnectionInfo) -> None: ...

    def on_disconnect(self, info: ConnectionInfo) -> None: ...

    def on_request(self, api_key: int, bytes_in: int, bytes_out: int, seconds: float) -> None:
        """One answered (or acks=0) request: frame sizes with their 4-byte size prefix, and the
        time from a whole frame read to its response sent."""


async def serve_connection(stream: trio.SocketStream, dispatch: Dispatch, max_request_bytes: int,
                           connection_id: int, observer: ServerObserver | None = None) -> None:
    peer = _peer_name(stream)
    info = ConnectionInfo(peer, connection_id)
    reader = FrameReader(stream, max_request_bytes)
    api_name = "?"
    if observer is not None:
        observer.on_connect(info)
    try:
        while True:
            frame = await reader.read_frame()
            if frame is None:
                return
            started = time.perf_counter() if observer is not None else 0.0
            api_name = "?"
            try:
                request = decode_request(frame)
            except UnsupportedApiError as e:
                h = e.header
                api_name = f"{API_NAMES.get(h.api_key, h.api_key)} v{h.api_version}"
                if h.api_key != API_VERSIONS:
                    raise
                # KIP-511: answer an ApiVersions of unknown version with a v0 response carrying
                # UNSUPPORTED_VERSION and our ranges, so the client can retry with a version we know.
                fallback = await dispatch(Request(h._replace(api_version=0), Msg()), info)
                assert fallback is not None
                fallback["error_code"] = ErrorCode.UNSUPPORTED_VERSION
                out = encode_response(API_VERSIONS, 0, h.correlation_id, fallback)
                sent = await send_response(stream, out)
                if observer is not None:
                    observer.on_request(h.api_key, len(frame) + 4, sent, time.perf_counter() - started)
                continue
            h = request.header
            api_name = f"{API_NAMES[h.api_key]} v{h.api_version}"
            if request.trailing_bytes:
                log.debug("%s from %s (%s) had %d bytes after its body (ignored, as Kafka does)",
                          api_name, peer, h.client_id, request.trailing_bytes)
            response = await dispatch(request, info)
            sent = 0
            if response is not None:
                out = encode_response(h.api_key, h.api_version, h.correlation_id, response)
                sent = await send_response(stream, out)
            if observer is not None:
                observer.on_request(h.api_key, len(frame) + 4, sent, time.perf_counter() - started)
    except (DecodeError, FrameTooLarge, EOFError) as e:
        log.warning("closing connection from %s: malformed request (%s): %s", peer, api_name, e)
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


def _peer_name(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
        return f"{host}:{port}"
    except OSError:
        return "?"
