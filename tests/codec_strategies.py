"""Hypothesis strategies that generate valid values for any construct schema of the codec."""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import strategies as st

from pykbroker.protocol import primitives as p

_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)

_INT_RANGES = {"b": 8, "h": 16, "i": 32, "q": 64}


def for_type(t: p.KafkaType) -> st.SearchStrategy[Any]:
    if isinstance(t, p.KStruct):
        return for_struct(t)
    if isinstance(t, p.NullableStruct):
        return st.none() | for_struct(t.struct_type)
    if isinstance(t, p.Array):
        items = st.lists(for_type(t.element), max_size=3)
        return st.none() | items if t.nullable else items
    if isinstance(t, p.Fixed):
        return _fixed(t.fmt or "")
    if isinstance(t, p.Uuid):
        return st.uuids()
    if isinstance(t, p.String):
        return st.none() | _TEXT if t.nullable else _TEXT
    if isinstance(t, p.Bytes):
        data = st.binary(max_size=40)
        return st.none() | data if t.nullable else data
    raise TypeError(t)


def _fixed(fmt: str) -> st.SearchStrategy[Any]:
    if fmt == "?":
        return st.booleans()
    if fmt == "d":
        return st.floats(allow_nan=False)
    if fmt in _INT_RANGES:
        bits = _INT_RANGES[fmt]
        return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    size = struct.calcsize(">" + fmt)
    return st.integers(0, (1 << (8 * size)) - 1)


def for_struct(s: p.KStruct) -> st.SearchStrategy[Any]:
    fields = {f.name: for_type(f.type) for f in s.fields}
    fields.update({f.name: for_type(f.type) for f in s.tagged})
    return st.fixed_dictionaries(fields)
