"""From the declarative specs in protocol_specs/ to a construct schema for one message version.

A spec describes every version at once (each field carries its version ranges); `struct_at`
picks the fields present at one version and the wire form each takes there (classic or compact,
nullable or not, tagged or not).
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from .primitives import (
    Array, Bytes, Field, KafkaType, KStruct, NullableStruct, Records, String, Uuid, fixed,
    FIXED_TYPES,
)


class VersionRange:
    """Kafka's version-range strings: "3+", "0-12", "5", "none"."""

    __slots__ = ("low", "high")

    def __init__(self, text: str) -> None:
        if text == "none":
            self.low, self.high = 1, 0
        elif text.endswith("+"):
            self.low, self.high = int(text[:-1]), 1 << 15
        elif "-" in text:
            lo, hi = text.split("-")
            self.low, self.high = int(lo), int(hi)
        else:
            self.low = self.high = int(text)

    def __contains__(self, version: int) -> bool:
        return self.low <= version <= self.high

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(range(self.low, self.high + 1))


@functools.lru_cache(maxsize=None)
def vrange(text: str) -> VersionRange:
    return VersionRange(text)


@functools.lru_cache(maxsize=None)
def load_spec(stem: str) -> dict[str, Any]:
    """The spec of one message by file stem, e.g. "produce_request"."""
    text = resources.files("protocol_specs").joinpath(f"{stem}.json").read_text()
    return json.loads(text)


@functools.lru_cache(maxsize=None)
def api_keys() -> tuple[dict[str, Any], ...]:
    text = resources.files("protocol_specs").joinpath("api_keys.json").read_text()
    return tuple(json.loads(text))


def spec_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("protocol_specs").iterdir()
                  if p.name.endswith(".json") and p.name != "api_keys.json")


def struct_at(spec: dict[str, Any], version: int) -> KStruct:
    """The construct schema of a message spec at `version`."""
    if version not in vrange(spec["versions"]):
        raise ValueError(f"{spec['name']} has no version {version} (valid: {spec['versions']})")
    flexible = version in vrange(spec["flexible"])
    return _struct(spec["name"], spec["fields"], version, flexible)


def _struct(name: str, fields: list[dict[str, Any]], version: int, flexible: bool) -> KStruct:
    plain: list[Field] = []
    tagged: list[Field] = []
    for f in fields:
        if version not in vrange(f["versions"]):
            continue
        field_flexible = flexible and "flexible" not in f or (
            "flexible" in f and version in vrange(f["flexible"]))
        is_tagged = flexible and "tagged" in f and version in vrange(f["tagged"])
        # Tagged fields always use the compact forms; their nullability follows the spec.
        t = _type(f, version, field_flexible or is_tagged, flexible)
        default = _default(f, t, version)
        if is_tagged:
            tagged.append(Field(f["name"], t, default, f["tag"]))
        else:
            plain.append(Field(f["name"], t, default))
    return KStruct(name, plain, tagged, flexible)


def _type(f: dict[str, Any], version: int, compact: bool, flexible: bool) -> KafkaType:
    ktype: str = f["type"]
    nullable = "nullable" in f and version in vrange(f["nullable"])
    if ktype.startswith("[]"):
        elem = ktype[2:]
        if elem in FIXED_TYPES or elem in ("string", "bytes", "uuid", "records"):
            el: KafkaType = _scalar(elem, compact, False)
        else:
            el = _struct(elem, f["fields"], version, flexible)
        return Array(el, compact, nullable)
    if "fields" in f:
        st = _struct(ktype, f["fields"], version, flexible)
        return NullableStruct(st) if nullable else st
    return _scalar(ktype, compact, nullable)


def _scalar(ktype: str, compact: bool, nullable: bool) -> KafkaType:
    if ktype in FIXED_TYPES:
        return fixed(ktype)
    if ktype == "uuid":
        return Uuid()
    if ktype == "string":
        return String(compact, nullable)
    if ktype == "bytes":
        return Bytes(compact, nullable)
    if ktype == "records":
        return Records(compact, nullable)
    raise ValueError(f"unknown Kafka type {ktype!r}")


def _default(f: dict[str, Any], t: KafkaType, version: int) -> Any:
    """Kafka's generated default: the spec's `default` where given, else the type's zero value."""
    if "default" in f:
        d = f["default"]
        if d is None and not (isinstance(t, (NullableStruct, Array)) or getattr(t, "nullable", False)):
            return t.default  # "null" default outside the nullable versions
        if f["type"].startswith("[]"):
            return None if d is None else []
        return d
    if isinstance(t, KStruct):
        return None  # absent struct: built from its own field defaults
    return t.default
