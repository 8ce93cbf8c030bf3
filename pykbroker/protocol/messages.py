"""(api_key, version) -> compiled request and response codecs, built once from protocol_specs/.

Versions whose schema is structurally identical share one compiled codec.
"""

from __future__ import annotations

import functools
import io
import struct
from typing import Any

from construct import ConstructError

from .primitives import DecodeError, EncodeError, KStruct, Msg
from .schema import api_keys, load_spec, struct_at, vrange

# Everything compiled code raises on malformed input; all become DecodeError.
_DECODE_ERRORS = (DecodeError, IndexError, ValueError, TypeError, OverflowError, UnicodeDecodeError, struct.error)
_ENCODE_ERRORS = (EncodeError, TypeError, ValueError, AttributeError, OverflowError, struct.error)


class Codec:
    """One message at one version: compiled parse/build plus the interpreted schema for errors."""

    __slots__ = ("name", "version", "schema", "compiled", "_parse", "_build")

    def __init__(self, name: str, version: int, schema: KStruct, compiled: Any) -> None:
        self.name = name
        self.version = version
        self.schema = schema
        self.compiled = compiled
        self._parse = self.compiled.module.entry_parse
        self._build = self.compiled.module.entry_build

    def decode(self, buf: Any, pos: int = 0) -> tuple[Msg, int]:
        """Parse from `buf` (bytes or memoryview) at `pos`; returns (message, end position)."""
        view = buf if isinstance(buf, memoryview) else memoryview(buf)
        try:
            return self._parse(view, pos)
        except _DECODE_ERRORS as e:
            raise self._locate(view, pos, e) from None

    def _locate(self, view: memoryview, pos: int, err: Exception) -> DecodeError:
        """Re-parse interpreted (slow, only on error): its errors carry the path of the failing field."""
        try:
            self.schema._parse(io.BytesIO(view[pos:]), None, self.name)
        except DecodeError as e:
            return DecodeError(e.reason, f"{self.name} v{self.version}: {e.path}")
        except (ConstructError, *_DECODE_ERRORS) as e:  # construct's stream errors name the path in their text
            return DecodeError(f"{type(e).__name__}: {e}", f"{self.name} v{self.version}")
        return DecodeError(f"{type(err).__name__}: {err}", f"{self.name} v{self.version}")

    def encode(self, obj: Any) -> bytearray:
        out = bytearray()
        self.encode_into(obj, out)
        return out

    def encode_into(self, obj: Any, out: bytearray) -> None:
        try:
            self._build(obj, out)
        except _ENCODE_ERRORS as e:
            raise EncodeError(f"{self.name} v{self.version}: {type(e).__name__}: {e}") from None

    def defaults(self) -> Msg:
        return self.schema.defaults()


API_NAMES: dict[int, str] = {e["api_key"]: e["name"] for e in api_keys()}
API_KEYS: dict[str, int] = {v: k for k, v in API_NAMES.items()}
API_VERSION_RANGES: dict[int, tuple[int, int]] = {
    e["api_key"]: (e["min_version"], e["max_version"]) for e in api_keys()
}


@functools.lru_cache(maxsize=None)
def _stems() -> dict[tuple[int, str], str]:
    """(api_key, "request"/"response") -> spec file stem."""
    from .schema import spec_names
    out = {}
    for stem in spec_names():
        spec = load_spec(stem)
        if "api_key" in spec:
            out[(spec["api_key"], spec["type"])] = stem
    return out


# Structurally identical versions (e.g. Produce v3-v8) share one compiled module.
_by_signature: dict[Any, Any] = {}


@functools.lru_cache(maxsize=None)
def codec(stem: str, version: int) -> Codec:
    """The compiled codec of any spec (requests, responses, headers, data) at `version`."""
    spec = load_spec(stem)
    schema = struct_at(spec, version)
    signature = schema.signature()
    compiled = _by_signature.get(signature)
    if compiled is None:
        compiled = _by_signature[signature] = schema.compile()
    return Codec(spec["name"], version, schema, compiled)


def request_codec(api_key: int, version: int) -> Codec:
    return codec(_stems()[(api_key, "request")], version)


def response_codec(api_key: int, version: int) -> Codec:
    return codec(_stems()[(api_key, "response")], version)


def is_flexible(api_key: int, version: int) -> bool:
    """Whether the request (and response) at this version uses compact types and tagged fields."""
    return version in vrange(load_spec(_stems()[(api_key, "request")])["flexible"])


def spec_for(api_key: int, kind: str) -> dict[str, Any]:
    return load_spec(_stems()[(api_key, kind)])
