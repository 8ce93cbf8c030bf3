"""Frames: the 4-byte size prefix, request headers v0-v2 and response headers v0-v1.

    Request  => Size:int32 RequestHeader Body
    RequestHeader v0 => api_key:int16 api_version:int16 correlation_id:int32
    RequestHeader v1 => v0 + client_id:NULLABLE_STRING
    RequestHeader v2 => v1 + TAG_BUFFER                (client_id stays non-compact, KIP-482)
    Response => Size:int32 ResponseHeader Body
    ResponseHeader v0 => correlation_id:int32
    ResponseHeader v1 => v0 + TAG_BUFFER

The header version follows the body's: a flexible request version uses header v2 and response
header v1 -- except ApiVersions, whose response always uses header v0 so that a client can read
it whatever version it asked for (KIP-511).
"""

from __future__ import annotations

import struct
from typing import Any, Callable, NamedTuple

from .messages import API_NAMES, API_VERSION_RANGES, codec, is_flexible, request_codec, response_codec
from .primitives import DecodeError, Msg, OutFrame

SIZE = struct.Struct(">i")
_HEAD = struct.Struct(">hhi")
API_VERSIONS = 18
CONTROLLED_SHUTDOWN = 7


class UnsupportedApiError(DecodeError):
    """A well-framed request whose api key or version has no definition (or is not served)."""

    def __init__(self, message: str, header: "RequestHeader") -> None:
        super().__init__(message)
        self.header = header


class RequestHeader(NamedTuple):
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    header_version: int


class Request(NamedTuple):
    header: RequestHeader
    body: Msg
    trailing_bytes: int = 0
    #: Bytes of the frame (header and body, without the size prefix): what produce quotas count.
    size: int = 0


def request_header_version(api_key: int, api_version: int) -> int:
    if api_key == CONTROLLED_SHUTDOWN and api_version == 0:
        return 0
    return 2 if is_flexible(api_key, api_version) else 1


def response_header_version(api_key: int, api_version: int) -> int:
    if api_key == API_VERSIONS:
        return 0
    return 1 if is_flexible(api_key, api_version) else 0


def peek_header(frame: Any) -> tuple[int, int, int]:
    """api_key, api_version, correlation_id: readable from any frame of 8 bytes or more."""
    try:
        return _HEAD.unpack_from(frame, 0)
    except struct.error:
        raise DecodeError(f"frame of {len(frame)} bytes is shorter than a request header") from None


def decode_request_header(frame: Any) -> tuple[RequestHeader, int]:
    """The header and the offset of the body. Unknown api keys/versions raise UnsupportedApiError."""
    view = frame if isinstance(frame, memoryview) else memoryview(frame)
    api_key, api_version, correlation_id = peek_header(view)
    if api_key not in API_VERSION_RANGES:
        header = RequestHeader(api_key, api_version, correlation_id, None, 1)
        raise UnsupportedApiError(f"unknown api key {api_key}", header)
    low, high = API_VERSION_RANGES[api_key]
    if not low <= api_version <= high:
        # Still read the client id (header v1 layout) so the error reply can be logged usefully.
        try:
            client_id = codec("request_header", 1).decode(view)[0].client_id
        except DecodeError:
            client_id = None
        header = RequestHeader(api_key, api_version, correlation_id, client_id, 1)
        raise UnsupportedApiError(
            f"{API_NAMES[api_key]} v{api_version} is outside Kafka's range v{low}-v{high}", header)
    hv = request_header_version(api_key, api_version)
    h, pos = codec("request_header", hv).decode(view)
    # Header v0 (ControlledShutdown v0) has no client id field at all.
    return RequestHeader(api_key, api_version, correlation_id, h.get("client_id"), hv), pos


def decode_request(frame: Any, served: Callable[[int, int], bool] | None = None) -> Request:
    """A whole request frame (without its size prefix) -> header and body.

    `served(api_key, api_version)`, if given, is asked before the body is read: like Kafka's
    SocketServer (parseRequestHeader), an api that is not served raises UnsupportedApiError
    whatever its body holds.

    Bytes after the body are ignored, as Kafka's broker does: librdkafka 2.x relies on it (its
    Metadata v9+ "all topics" request keeps a 4-byte placeholder where a 1-byte compact array
    count belongs). Every length and count inside the body is still checked against the frame.
    """
    view = frame if isinstance(frame, memoryview) else memoryview(frame)
    header, pos = decode_request_header(view)
    if served is not None and not served(header.api_key, header.api_version):
        raise UnsupportedApiError(f"{API_NAMES[header.api_key]} v{header.api_version} is not served by this broker",
                                  header)
    body, end = request_codec(header.api_key, header.api_version).decode(view, pos)
    return Request(header, body, len(view) - end, len(view))


def encode_request(api_key: int, api_version: int, correlation_id: int, client_id: str | None,
                   body: Any) -> bytes:
    """A size-prefixed request frame (used by tests and by the broker's own clients)."""
    hv = request_header_version(api_key, api_version)
    out = bytearray(4)
    codec("request_header", hv).encode_into({
        "request_api_key": api_key, "request_api_version": api_version,
        "correlation_id": correlation_id, "client_id": client_id,
    }, out)
    request_codec(api_key, api_version).encode_into(body, out)
    SIZE.pack_into(out, 0, len(out) - 4)
    return bytes(out)


def encode_response(api_key: int, api_version: int, correlation_id: int, body: Any) -> OutFrame:
    """A size-prefixed response frame; records held in files stay out of it as ``holes``
    (the size prefix counts them), for the server to send from their source."""
    out = OutFrame(8)
    _HEAD.pack_into(out, 0, 0, 0, 0)
    struct.pack_into(">i", out, 4, correlation_id)
    if response_header_version(api_key, api_version) == 1:
        out.append(0)  # empty tag buffer
    response_codec(api_key, api_version).encode_into(body, out)
    SIZE.pack_into(out, 0, len(out) - 4 + out.hole_bytes)
    return out


def decode_response(api_key: int, api_version: int, frame: Any) -> tuple[int, Msg]:
    """(correlation_id, body) of a response frame without its size prefix (tests, clients)."""
    view = frame if isinstance(frame, memoryview) else memoryview(frame)
    hv = response_header_version(api_key, api_version)
    h, pos = codec("response_header", hv).decode(view)
    body, end = response_codec(api_key, api_version).decode(view, pos)
    if end != len(view):
        raise DecodeError(f"{len(view) - end} bytes left over after the response body")
    return h.correlation_id, body
