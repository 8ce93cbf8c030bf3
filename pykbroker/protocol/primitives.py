"""Kafka's wire types as construct classes that compile.

Each type is a real `construct.Construct`: it parses and builds interpreted (`_parse`/`_build`, with
a field path in every error) and compiles (`_emitparse`/`_emitbuild`) so `schema.compile()` never
falls back to the interpreter.  Compiled code does not go through construct's per-struct context
containers: every type emits a plain function over a buffer and an offset,

    parse:  fn(buf, pos) -> (value, new_pos)      buf is a memoryview, so slices are zero-copy
    build:  fn(value, out) -> None                out is a bytearray

and structs merge runs of fixed-size fields into one precompiled `struct.Struct`.  Kafka grammar
never needs the context (every length is a prefix), so nothing is lost by skipping it.

Bounds: compiled code relies on `unpack_from`/indexing to fail on a short buffer, and checks every
length and count against the bytes left before slicing or allocating.
"""

from __future__ import annotations

import functools
import io as _io
import struct
import uuid
from typing import Any, Iterable, Mapping

from construct import Construct, stream_read, stream_write
from construct.core import CodeGen

ZERO_UUID = uuid.UUID(int=0)


class DecodeError(Exception):
    """Bytes that are not a valid encoding of the expected message; `path` names the field."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.reason = message


class EncodeError(Exception):
    """A value that cannot be written as the field's wire type."""


class Msg(dict):
    """A decoded struct: a dict with attribute access (`req.topic_data`), cheap to create."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


# --------------------------------------------------------------------------- varints

def read_uvarint(buf: Any, pos: int) -> tuple[int, int]:
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    result = b & 0x7F
    shift = 7
    while True:
        pos += 1
        b = buf[pos]
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos + 1
        shift += 7
        if shift > 28:
            raise ValueError("unsigned varint longer than 5 bytes")


def write_uvarint(value: int, out: bytearray) -> None:
    if value < 0:
        raise EncodeError(f"negative unsigned varint {value}")
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def uvarint_bytes(value: int) -> bytes:
    out = bytearray()
    write_uvarint(value, out)
    return bytes(out)


def _stream_uvarint(stream: Any, path: str) -> int:
    result = shift = 0
    while True:
        b = stream_read(stream, 1, path)[0]
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result
        shift += 7
        if shift > 28:
            raise DecodeError("unsigned varint longer than 5 bytes", path)


def _stream_remaining(stream: Any) -> int:
    here = stream.tell()
    end = stream.seek(0, 2)
    stream.seek(here)
    return end - here


# --------------------------------------------------------------------------- base

_PRELUDE = """
    from pykbroker.protocol.primitives import (
        Msg, DecodeError, read_uvarint, write_uvarint, ZERO_UUID, kparse_io, kbuild_io,
        array_struct as _array_struct, external_bytes, _BYTES_LIKE,
    )
    from uuid import UUID
    from struct import Struct as _Struct
"""


@functools.lru_cache(maxsize=1024)
def array_struct(fmt: str, count: int) -> struct.Struct:
    """The struct of `count` fixed-size elements: arrays of INT32 ids are read and written in one call."""
    return struct.Struct(f">{count}{fmt}")


def kparse_io(fn: Any, stream: Any) -> Any:
    """Adapter from construct's stream interface to the (buf, pos) functions."""
    start = stream.tell()
    data = memoryview(stream.read())
    value, pos = fn(data, 0)
    stream.seek(start + pos)
    return value


def kbuild_io(fn: Any, obj: Any, stream: Any) -> Any:
    out = bytearray()
    fn(obj, out)
    stream.write(out)
    return obj


class KafkaType(Construct):
    """Base of the Kafka wire types: subclasses provide `emit_parser`/`emit_builder`."""

    #: struct format of a fixed-size type (merged by structs into one unpack), else None
    fmt: str | None = None
    #: fewest bytes one value takes: array counts are checked against bytes left with it
    min_size: int = 1
    #: value a builder writes when the field is absent
    default: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.flagbuildnone = True

    # Compiled form: names of module-level functions in `code`.
    def emit_parser(self, code: CodeGen) -> str:
        raise NotImplementedError

    def emit_builder(self, code: CodeGen) -> str:
        raise NotImplementedError

    def _emit_cached(self, code: CodeGen, kind: str, make: Any) -> str:
        cache = code.parsercache if kind == "p" else code.buildercache
        key = ("kafka", kind, self.signature())
        if key not in cache:
            code.append(_PRELUDE)
            name = f"{kind}_{type(self).__name__.lower()}_{code.allocateId()}"
            cache[key] = name
            code.append(make(name))
        return cache[key]

    def signature(self) -> Any:
        """Structural identity: equal signatures compile to the same functions."""
        raise NotImplementedError

    # construct's standard compile hooks, for a type compiled on its own.
    # The (buf, pos) functions of the outermost type are exported as `entry_parse`/`entry_build`.
    def _emitparse(self, code: CodeGen) -> str:
        name = self.emit_parser(code)
        code.append(f"entry_parse = {name}")
        return f"kparse_io({name}, io)"

    def _emitbuild(self, code: CodeGen) -> str:
        name = self.emit_builder(code)
        code.append(f"entry_build = {name}")
        return f"kbuild_io({name}, obj, io)"


# --------------------------------------------------------------------------- fixed-size

class Fixed(KafkaType):
    """INT8..INT64, UINT16, UINT32, FLOAT64, BOOLEAN: big-endian fixed-size numbers."""

    def __init__(self, kafka_type: str, fmt: str, default: Any) -> None:
        super().__init__()
        self.kafka_type = kafka_type
        self.fmt = fmt
        self.default = default
        self._struct = struct.Struct(">" + fmt)
        self.min_size = self._struct.size

    def signature(self) -> Any:
        return ("fixed", self.fmt)

    def _parse(self, stream: Any, context: Any, path: str) -> Any:
        return self._struct.unpack(stream_read(stream, self._struct.size, path))[0]

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        try:
            stream_write(stream, self._struct.pack(obj), self._struct.size, path)
        except struct.error as e:
            raise EncodeError(f"{path}: {obj!r} is not a valid {self.kafka_type}: {e}") from None
        return obj

    def emit_parser(self, code: CodeGen) -> str:
        def make(name: str) -> str:
            return f"""
                _S_{name} = _Struct('>{self.fmt}')
                def {name}(buf, pos):
                    return _S_{name}.unpack_from(buf, pos)[0], pos + {self.min_size}
            """
        return self._emit_cached(code, "p", make)

    def emit_builder(self, code: CodeGen) -> str:
        def make(name: str) -> str:
            return f"""
                _S_{name} = _Struct('>{self.fmt}')
                def {name}(value, out):
                    out += _S_{name}.pack(value)
            """
        return self._emit_cached(code, "b", make)


FIXED_TYPES = {
    "int8": ("b", 0), "int16": ("h", 0), "int32": ("i", 0), "int64": ("q", 0),
    "uint16": ("H", 0), "uint32": ("I", 0), "float64": ("d", 0.0), "bool": ("?", False),
}


def fixed(kafka_type: str) -> Fixed:
    fmt, default = FIXED_TYPES[kafka_type]
    return Fixed(kafka_type, fmt, default)


class Uuid(KafkaType):
    """UUID: 16 bytes, decoded as `uuid.UUID` (the all-zero UUID is Kafka's 'no id')."""

    min_size = 16
    default = ZERO_UUID

    def signature(self) -> Any:
        return ("uuid",)

    def _parse(self, stream: Any, context: Any, path: str) -> Any:
        return uuid.UUID(bytes=stream_read(stream, 16, path))

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        if not isinstance(obj, uuid.UUID):
            raise EncodeError(f"{path}: expected uuid.UUID, got {type(obj).__name__}")
        stream_write(stream, obj.bytes, 16, path)
        return obj

    def emit_parser(self, code: CodeGen) -> str:
        return self._emit_cached(code, "p", lambda name: f"""
            def {name}(buf, pos):
                end = pos + 16
                if end > len(buf):
                    raise DecodeError('uuid past the end of the buffer')
                return UUID(bytes=bytes(buf[pos:end])), end
        """)

    def emit_builder(self, code: CodeGen) -> str:
        return self._emit_cached(code, "b", lambda name: f"""
            def {name}(value, out):
                out += value.bytes
        """)


# --------------------------------------------------------------------------- strings and bytes

class _Sized(KafkaType):
    """Shared length-prefix logic of STRING/BYTES and their COMPACT_/NULLABLE_ forms.

    Classic forms carry an INT16 (strings) or INT32 (bytes) length, -1 for null; compact forms an
    unsigned varint of length + 1, 0 for null.
    """

    text = False

    def __init__(self, compact: bool, nullable: bool) -> None:
        super().__init__()
        self.compact = compact
        self.nullable = nullable
        self.default = None if nullable else self._empty()
        self.min_size = 1 if compact else self._len_struct().size

    def _empty(self) -> Any:
        return "" if self.text else b""

    def _len_struct(self) -> struct.Struct:
        return struct.Struct(">h" if self.text else ">i")

    def signature(self) -> Any:
        return (type(self).__name__, self.compact, self.nullable)

    def _decode(self, raw: Any) -> Any:
        return str(raw, "utf-8") if self.text else bytes(raw)

    def _encode(self, value: Any) -> Any:
        return value.encode("utf-8") if self.text else value

    def _parse(self, stream: Any, context: Any, path: str) -> Any:
        if self.compact:
            n = _stream_uvarint(stream, path) - 1
        else:
            ls = self._len_struct()
            n = ls.unpack(stream_read(stream, ls.size, path))[0]
        if n < 0:
            if not self.nullable or (not self.compact and n != -1):
                raise DecodeError(f"length {n} for a non-nullable field", path)
            return None
        if n > _stream_remaining(stream):
            raise DecodeError(f"length {n} past the end of the buffer", path)
        raw = stream_read(stream, n, path)
        try:
            return self._decode(raw)
        except UnicodeDecodeError as e:
            raise DecodeError(f"invalid UTF-8: {e}", path) from None

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        out = bytearray()
        self._build_into(obj, out, path)
        stream_write(stream, bytes(out), len(out), path)
        return obj

    def _build_into(self, obj: Any, out: bytearray, path: str) -> None:
        if obj is None:
            if not self.nullable:
                raise EncodeError(f"{path}: null in a non-nullable field")
            if self.compact:
                out.append(0)
            else:
                out += self._len_struct().pack(-1)
            return
        data = self._encode(obj)
        if self.compact:
            write_uvarint(len(data) + 1, out)
        else:
            try:
                out += self._len_struct().pack(len(data))
            except struct.error:
                raise EncodeError(f"{path}: {len(data)} bytes is too long for the field") from None
        out += data

    def emit_parser(self, code: CodeGen) -> str:
        decode = "str(buf[pos:end], 'utf-8')" if self.text else self._slice_expr()
        null = "return None, pos" if self.nullable else "raise DecodeError('null in a non-nullable field')"

        def make(name: str) -> str:
            if self.compact:
                pre = ""
                head = _UVARINT_HEAD + ["n -= 1", "if n < 0:", f"    {null}"]
            else:
                pre = f"_S_{name} = _Struct('>{'h' if self.text else 'i'}')"
                head = [
                    f"n = _S_{name}.unpack_from(buf, pos)[0]",
                    f"pos += {2 if self.text else 4}",
                    "if n < 0:",
                    "    if n != -1:",
                    "        raise DecodeError('negative length ' + str(n))",
                    f"    {null}",
                ]
            body = head + [
                "end = pos + n",
                "if end > len(buf):",
                "    raise DecodeError('length ' + str(n) + ' past the end of the buffer')",
                f"return {decode}, end",
            ]
            return _function(pre, f"def {name}(buf, pos):", body)
        return self._emit_cached(code, "p", make)

    def _slice_expr(self) -> str:
        return "bytes(buf[pos:end])"

    def emit_builder(self, code: CodeGen) -> str:
        encode = "value.encode('utf-8')" if self.text else "value"
        if not self.nullable:
            null = "raise TypeError('null in a non-nullable field')"
        elif self.compact:
            null = "out.append(0)"
        else:
            null = f"out += {self._len_struct().pack(-1)!r}"

        def make(name: str) -> str:
            pre = "" if self.compact else f"_S_{name} = _Struct('>{'h' if self.text else 'i'}')"
            body = ["if value is None:", f"    {null}", "    return", f"data = {encode}"]
            if self.compact:
                body += ["n = len(data) + 1"] + _UVARINT_WRITE
            else:
                body += [f"out += _S_{name}.pack(len(data))"]
            body += ["out += data"]
            return _function(pre, f"def {name}(value, out):", body)
        return self._emit_cached(code, "b", make)


# Inline fast path of an unsigned varint read into `n` / write of `n` (one byte below 128).
_UVARINT_HEAD = [
    "n = buf[pos]",
    "if n < 0x80:",
    "    pos += 1",
    "else:",
    "    n, pos = read_uvarint(buf, pos)",
]
_UVARINT_WRITE = [
    "if n < 0x80:",
    "    out.append(n)",
    "else:",
    "    write_uvarint(n, out)",
]


def _function(pre: str, header: str, body: list[str]) -> str:
    """Source of one generated function (plus module-level lines it needs before it)."""
    lines = ([pre] if pre else []) + [header] + ["    " + ln for ln in body]
    return "\n".join(lines)


class String(_Sized):
    """STRING / NULLABLE_STRING / COMPACT_STRING / COMPACT_NULLABLE_STRING (UTF-8)."""

    text = True


class Bytes(_Sized):
    """BYTES / NULLABLE_BYTES / COMPACT_BYTES / COMPACT_NULLABLE_BYTES."""


class OutFrame(bytearray):
    """An encoded frame that may leave *holes* for records held elsewhere (e.g. in a segment file).

    ``holes`` lists ``(position, value)``: ``value``'s bytes belong at ``position`` of the frame but
    are not copied into it; the server sends them from their source (sendfile). A plain bytearray
    output gets the bytes copied in instead (see ``external_bytes``).
    """

    holes: list[tuple[int, Any]]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.holes = []

    @property
    def hole_bytes(self) -> int:
        return sum(len(v) for _, v in self.holes)


def external_bytes(value: Any, out: bytearray) -> None:
    """Append a RECORDS value that is not bytes-like: as a hole of an OutFrame, else its bytes."""
    holes = getattr(out, "holes", None)
    if holes is None:
        out += value.tobytes()
    else:
        holes.append((len(out), value))


class Records(Bytes):
    """RECORDS: opaque record batches, handed on as a zero-copy memoryview of the frame.

    When encoding, a value that is not bytes-like (it has ``__len__`` and ``tobytes()``, e.g. a
    range of a segment file) is not copied: it becomes a hole of the OutFrame being built.
    """

    def _decode(self, raw: Any) -> Any:
        return memoryview(raw)

    def _slice_expr(self) -> str:
        return "buf[pos:end]"

    def _encode(self, value: Any) -> Any:
        return value if isinstance(value, (bytes, bytearray, memoryview)) else value.tobytes()

    def emit_builder(self, code: CodeGen) -> str:
        null = "out.append(0)" if self.compact else f"out += {self._len_struct().pack(-1)!r}"
        if not self.nullable:
            null = "raise TypeError('null in a non-nullable field')"

        def make(name: str) -> str:
            pre = "" if self.compact else f"_S_{name} = _Struct('>i')"
            body = ["if value is None:", f"    {null}", "    return"]
            if self.compact:
                body += ["n = len(value) + 1"] + _UVARINT_WRITE
            else:
                body += [f"out += _S_{name}.pack(len(value))"]
            body += ["if isinstance(value, _BYTES_LIKE):", "    out += value", "else:",
                     "    external_bytes(value, out)"]
            return _function(pre, f"def {name}(value, out):", body)
        return self._emit_cached(code, "b", make)


_BYTES_LIKE = (bytes, bytearray, memoryview)


# --------------------------------------------------------------------------- arrays

class Array(KafkaType):
    """ARRAY (INT32 count, -1 null) and COMPACT_ARRAY (unsigned varint count + 1, 0 null)."""

    def __init__(self, element: KafkaType, compact: bool, nullable: bool) -> None:
        super().__init__()
        self.element = element
        self.compact = compact
        self.nullable = nullable
        self.default = None if nullable else []
        self.min_size = 1 if compact else 4

    def signature(self) -> Any:
        return ("array", self.element.signature(), self.compact, self.nullable)

    def _parse(self, stream: Any, context: Any, path: str) -> Any:
        if self.compact:
            n = _stream_uvarint(stream, path) - 1
        else:
            n = struct.unpack(">i", stream_read(stream, 4, path))[0]
        if n < 0:
            if not self.nullable or (not self.compact and n != -1):
                raise DecodeError(f"count {n} for a non-nullable array", path)
            return None
        if n * max(self.element.min_size, 1) > _stream_remaining(stream):
            raise DecodeError(f"count {n} is more than the bytes left", path)
        return [self.element._parse(stream, context, f"{path}[{i}]") for i in range(n)]

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        if obj is None:
            if not self.nullable:
                raise EncodeError(f"{path}: null in a non-nullable array")
            null = b"\x00" if self.compact else b"\xff\xff\xff\xff"
            stream_write(stream, null, len(null), path)
            return obj
        head = bytearray()
        if self.compact:
            write_uvarint(len(obj) + 1, head)
        else:
            head += struct.pack(">i", len(obj))
        stream_write(stream, bytes(head), len(head), path)
        for i, item in enumerate(obj):
            self.element._build(item, stream, context, f"{path}[{i}]")
        return obj

    def emit_parser(self, code: CodeGen) -> str:
        el = self.element
        minsize = max(el.min_size, 1)
        if el.fmt is not None:
            items = f"list(_array_struct('{el.fmt}', n).unpack_from(buf, pos)), pos + n * {el.min_size}"
            loop = f"return {items}"
        else:
            elfn = el.emit_parser(code)
            loop = f"""result = []
                    append = result.append
                    for _ in range(n):
                        v, pos = {elfn}(buf, pos)
                        append(v)
                    return result, pos"""
        if self.compact:
            head = """n = buf[pos]
                    if n < 0x80:
                        pos += 1
                    else:
                        n, pos = read_uvarint(buf, pos)
                    n -= 1"""
        else:
            head = """n = _S_I32.unpack_from(buf, pos)[0]
                    pos += 4"""
        null = "return None, pos" if self.nullable else "raise DecodeError('null for a non-nullable array')"

        def make(name: str) -> str:
            return f"""
                _S_I32 = _Struct('>i')
                def {name}(buf, pos):
                    {head}
                    if n < 0:
                        if n != -1 and {not self.compact}:
                            raise DecodeError('negative count ' + str(n))
                        {null}
                    if n * {minsize} > len(buf) - pos:
                        raise DecodeError('count ' + str(n) + ' is more than the bytes left')
                    {loop}
            """
        return self._emit_cached(code, "p", make)

    def emit_builder(self, code: CodeGen) -> str:
        el = self.element
        if el.fmt is not None:
            items = f"out += _array_struct('{el.fmt}', len(value)).pack(*value)"
        else:
            elfn = el.emit_builder(code)
            items = f"""for v in value:
                        {elfn}(v, out)"""
        if self.compact:
            null = "out.append(0)"
            head = """n = len(value) + 1
                    if n < 0x80:
                        out.append(n)
                    else:
                        write_uvarint(n, out)"""
        else:
            null = "out += b'\\xff\\xff\\xff\\xff'"
            head = "out += _S_I32.pack(len(value))"
        if not self.nullable:
            null = "raise TypeError('null in a non-nullable array')"

        def make(name: str) -> str:
            return f"""
                _S_I32 = _Struct('>i')
                def {name}(value, out):
                    if value is None:
                        {null}
                        return
                    {head}
                    {items}
            """
        return self._emit_cached(code, "b", make)


# --------------------------------------------------------------------------- structs

class Field:
    """One struct member: name, wire type, the default a builder writes when it is absent."""

    __slots__ = ("name", "type", "default", "tag")

    def __init__(self, name: str, type_: KafkaType, default: Any = None, tag: int | None = None) -> None:
        self.name = name
        self.type = type_
        self.default = default
        self.tag = tag

    def signature(self) -> Any:
        return (self.name, self.type.signature(), _sig_value(self.default), self.tag)


def _sig_value(value: Any) -> Any:
    return repr(value) if isinstance(value, (list, dict, uuid.UUID)) else value


def _literal(value: Any) -> str:
    if isinstance(value, uuid.UUID):
        return "ZERO_UUID" if value.int == 0 else f"UUID({str(value)!r})"
    if isinstance(value, list):
        return "[]"  # fresh list per use: defaults are never shared mutable objects
    return repr(value)


class KStruct(KafkaType):
    """A Kafka struct at one version: fields in wire order, then (flexible versions) tagged fields.

    Tagged fields are written only when they differ from their default, in tag order; tags the
    schema does not know are kept under `_unknown_tags` as (tag, bytes) and written back as read.
    """

    def __init__(self, name: str, fields: list[Field], tagged: list[Field], flexible: bool) -> None:
        super().__init__()
        self.name = name
        self.fields = fields
        self.tagged = sorted(tagged, key=lambda f: f.tag)
        self.flexible = flexible
        self.min_size = sum(f.type.min_size for f in fields) + (1 if flexible else 0)

    def signature(self) -> Any:
        return ("struct", self.name, tuple(f.signature() for f in self.fields),
                tuple(f.signature() for f in self.tagged), self.flexible)

    def defaults(self) -> Msg:
        """A struct holding every field's default (Kafka's generated-constructor values)."""
        out = Msg()
        for f in self.fields + self.tagged:
            out[f.name] = list(f.default) if isinstance(f.default, list) else f.default
        return out

    # ----- interpreted
    def _parse(self, stream: Any, context: Any, path: str) -> Any:
        result = Msg()
        for f in self.fields:
            result[f.name] = f.type._parse(stream, context, f"{path} -> {f.name}")
        if self.flexible:
            for f in self.tagged:
                result[f.name] = _copy_default(f.default)
            count = _stream_uvarint(stream, f"{path} -> (tagged fields)")
            if count > _stream_remaining(stream):
                raise DecodeError(f"{count} tagged fields is more than the bytes left", path)
            by_tag = {f.tag: f for f in self.tagged}
            for _ in range(count):
                tag = _stream_uvarint(stream, f"{path} -> (tag)")
                size = _stream_uvarint(stream, f"{path} -> (tag {tag} size)")
                if size > _stream_remaining(stream):
                    raise DecodeError(f"tag {tag} size {size} past the end of the buffer", path)
                raw = stream_read(stream, size, path)
                f = by_tag.get(tag)
                if f is None:
                    result.setdefault("_unknown_tags", []).append((tag, bytes(raw)))
                    continue
                sub = _io.BytesIO(raw)
                result[f.name] = f.type._parse(sub, context, f"{path} -> {f.name}")
                if sub.tell() != size:
                    raise DecodeError(f"tagged field used {sub.tell()} of its {size} bytes",
                                      f"{path} -> {f.name}")
        return result

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        if not isinstance(obj, Mapping):
            raise EncodeError(f"{path}: expected a mapping for struct {self.name}, got {type(obj).__name__}")
        for f in self.fields:
            f.type._build(obj.get(f.name, _copy_default(f.default)), stream, context, f"{path} -> {f.name}")
        if self.flexible:
            tags: list[tuple[int, bytes]] = []
            for f in self.tagged:
                value = obj.get(f.name, f.default)
                if _is_default(value, f.default):
                    continue
                sub = _io.BytesIO()
                f.type._build(value, sub, context, f"{path} -> {f.name}")
                tags.append((f.tag, sub.getvalue()))
            tags += obj.get("_unknown_tags") or []
            tags.sort(key=lambda t: t[0])
            out = bytearray()
            write_uvarint(len(tags), out)
            for tag, data in tags:
                write_uvarint(tag, out)
                write_uvarint(len(data), out)
                out += data
            stream_write(stream, bytes(out), len(out), path)
        return obj

    # ----- compiled
    def emit_parser(self, code: CodeGen) -> str:
        def make(name: str) -> str:
            lines: list[str] = []
            pre: list[str] = []
            names: list[str] = []
            for kind, group in _runs(self.fields):
                if kind == "fixed":
                    fmt = "".join(f.type.fmt for f in group)  # type: ignore[misc]
                    sname = f"_S_{name}_{len(pre)}"
                    pre.append(f"{sname} = _Struct('>{fmt}')")
                    targets = "".join(f"v_{f.name}, " for f in group)
                    lines.append(f"{targets}= {sname}.unpack_from(buf, pos)")
                    lines.append(f"pos += {struct.calcsize('>' + fmt)}")
                else:
                    f = group[0]
                    lines.append(f"v_{f.name}, pos = {f.type.emit_parser(code)}(buf, pos)")
                names += [f.name for f in group]
            items = ", ".join(f"{n!r}: v_{n}" for n in names)
            if not self.flexible:
                lines.append(f"return Msg({{{items}}}), pos")
            else:
                for f in self.tagged:
                    lines.append(f"v_{f.name} = {_literal(f.default)}")
                lines += [
                    "ntags = buf[pos]",
                    "if ntags < 0x80:",
                    "    pos += 1",
                    "else:",
                    "    ntags, pos = read_uvarint(buf, pos)",
                    "unknown = None",
                    "if ntags:",
                    "    if ntags > len(buf) - pos:",
                    "        raise DecodeError(str(ntags) + ' tagged fields is more than the bytes left')",
                    "    for _ in range(ntags):",
                    "        tag, pos = read_uvarint(buf, pos)",
                    "        size, pos = read_uvarint(buf, pos)",
                    "        end = pos + size",
                    "        if end > len(buf):",
                    "            raise DecodeError('tagged field past the end of the buffer')",
                ]
                kw = "if"
                for f in self.tagged:
                    lines += [
                        f"        {kw} tag == {f.tag}:",
                        f"            v_{f.name}, p2 = {f.type.emit_parser(code)}(buf[:end], pos)",
                        "            if p2 != end:",
                        "                raise DecodeError('tagged field ' + str(tag) + ' has extra bytes')",
                    ]
                    kw = "elif"
                unknown = [
                    "if unknown is None:", "    unknown = []",
                    "unknown.append((tag, bytes(buf[pos:end])))",
                ]
                if self.tagged:
                    lines.append("        else:")
                    lines += ["            " + u for u in unknown]
                else:
                    lines += ["        " + u for u in unknown]
                lines.append("        pos = end")
                tag_items = "".join(f", {f.name!r}: v_{f.name}" for f in self.tagged)
                lines.append(f"r = Msg({{{items}{tag_items}}})")
                lines += ["if unknown is not None:", "    r['_unknown_tags'] = unknown", "return r, pos"]
            body = "\n".join("    " + ln for ln in lines)
            return "\n".join(pre) + f"\ndef {name}(buf, pos):\n" + body
        return self._emit_cached(code, "p", make)

    def emit_builder(self, code: CodeGen) -> str:
        def make(name: str) -> str:
            lines: list[str] = ["g = value.get"]
            pre: list[str] = []
            for kind, group in _runs(self.fields):
                if kind == "fixed":
                    fmt = "".join(f.type.fmt for f in group)  # type: ignore[misc]
                    sname = f"_S_{name}_{len(pre)}"
                    pre.append(f"{sname} = _Struct('>{fmt}')")
                    args = ", ".join(f"g({f.name!r}, {_literal(f.default)})" for f in group)
                    lines.append(f"out += {sname}.pack({args})")
                else:
                    f = group[0]
                    lines.append(f"{f.type.emit_builder(code)}(g({f.name!r}, {_literal(f.default)}), out)")
            if self.flexible:
                if not self.tagged:
                    lines += [
                        "unknown = g('_unknown_tags')",
                        "if not unknown:",
                        "    out.append(0)",
                        "    return",
                        "tags = sorted(unknown, key=_tag_key)",
                    ]
                else:
                    lines.append("tags = []")
                    for f in self.tagged:
                        d = _literal(f.default)
                        cond = f"v is not None and v != {d}" if f.default is not None else "v is not None"
                        if isinstance(f.default, list):
                            cond = "v"
                        lines += [
                            f"v = g({f.name!r}, {d})",
                            f"if {cond}:",
                            "    tmp = bytearray()",
                            f"    {f.type.emit_builder(code)}(v, tmp)",
                            f"    tags.append(({f.tag}, tmp))",
                        ]
                    lines += [
                        "unknown = g('_unknown_tags')",
                        "if unknown:",
                        "    tags += unknown",
                        "    tags.sort(key=_tag_key)",
                    ]
                lines += [
                    "write_uvarint(len(tags), out)",
                    "for tag, data in tags:",
                    "    write_uvarint(tag, out)",
                    "    write_uvarint(len(data), out)",
                    "    out += data",
                ]
            body = "\n".join("    " + ln for ln in lines)
            return "_tag_key = lambda t: t[0]\n" + "\n".join(pre) + f"\ndef {name}(value, out):\n" + body
        return self._emit_cached(code, "b", make)


class NullableStruct(KafkaType):
    """A nullable struct field: INT8 -1 for null, else 1 and the struct (Kafka's generator)."""

    def __init__(self, struct_type: KStruct) -> None:
        super().__init__()
        self.struct_type = struct_type
        self.default = None
        self.min_size = 1

    def signature(self) -> Any:
        return ("nullable", self.struct_type.signature())

    def _parse(self, stream: Any, context: Any, path: str) -> Any:
        marker = struct.unpack(">b", stream_read(stream, 1, path))[0]
        if marker < 0:
            return None
        return self.struct_type._parse(stream, context, path)

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        if obj is None:
            stream_write(stream, b"\xff", 1, path)
            return obj
        stream_write(stream, b"\x01", 1, path)
        return self.struct_type._build(obj, stream, context, path)

    def emit_parser(self, code: CodeGen) -> str:
        inner = self.struct_type.emit_parser(code)
        return self._emit_cached(code, "p", lambda name: f"""
            def {name}(buf, pos):
                if buf[pos] >= 0x80:
                    return None, pos + 1
                return {inner}(buf, pos + 1)
        """)

    def emit_builder(self, code: CodeGen) -> str:
        inner = self.struct_type.emit_builder(code)
        return self._emit_cached(code, "b", lambda name: f"""
            def {name}(value, out):
                if value is None:
                    out.append(0xff)
                    return
                out.append(1)
                {inner}(value, out)
        """)


def _copy_default(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def _is_default(value: Any, default: Any) -> bool:
    if value is None:
        return True
    if isinstance(default, list):
        return not value
    return default is not None and value == default


def _runs(fields: Iterable[Field]) -> Iterable[tuple[str, list[Field]]]:
    """Group consecutive fixed-size fields so one struct.unpack reads them all."""
    group: list[Field] = []
    for f in fields:
        if f.type.fmt is not None:
            group.append(f)
            continue
        if group:
            yield "fixed", group
            group = []
        yield "var", [f]
    if group:
        yield "fixed", group
