"""Merge one message's specs from two Kafka releases into one spec covering every version of either.

Kafka 4.0 removed old versions (KIP-896) and later 4.x releases added new ones; a broker serving
clients of both needs the union. Versions the newer release defines take its definition (names
included: renames are wire-compatible); versions only the older one defines keep the older
definition. Works on specs already converted to the project's format (see generate.py), so field
version ranges are plain sets here. Every merged version is checked against its source, and shared
versions must have the same wire layout in both releases, or a `MergeError` says where they differ.
"""

from __future__ import annotations

import functools
from typing import Any, Collection

Spec = dict[str, Any]
Field = dict[str, Any]
_RANGE_KEYS = ("versions", "nullable", "tagged")


class MergeError(ValueError):
    """The two releases cannot be merged (they disagree on a version's wire layout, or ranges split)."""


#: Above any version Kafka will define: where open ranges ("3+") stop.
CEILING = 999


@functools.lru_cache(maxsize=None)
def versions_of(text: str, ceiling: int = CEILING) -> frozenset[int]:
    """Kafka's range text ("3+", "0-12", "5", "none") as a set, open ranges capped at `ceiling`."""
    if text == "none":
        return frozenset()
    if text.endswith("+"):
        return frozenset(range(int(text[:-1]), ceiling + 1))
    lo, _, hi = text.partition("-")
    return frozenset(range(int(lo), int(hi or lo) + 1))


def render(wanted: set[int], top: int, keep: list[str | None], within: frozenset[int] | set[int]) -> str:
    """`wanted` as range text: one of the sources' own texts when it says the same within `within`."""
    for text in keep:
        if text is not None and versions_of(text, top) & within == wanted:
            return text
    if not wanted:
        return "none"
    lo, hi = min(wanted), max(wanted)
    if wanted != set(range(lo, hi + 1)):
        raise MergeError(f"versions {sorted(wanted)} are not one range")
    if hi == top and lo != hi:
        return f"{lo}+"
    return str(lo) if lo == hi else f"{lo}-{hi}"


def layout(fields: list[Field], v: int, flexible: bool, names: bool) -> tuple[Any, ...]:
    """What a version puts on the wire (with or without the field names): the thing to compare."""
    plain, tagged = [], []
    for f in fields:
        if v not in versions_of(f["versions"]):
            continue
        is_tagged = flexible and "tagged" in f and v in versions_of(f["tagged"])
        compact = flexible and v in versions_of(f.get("flexible", "0+"))
        kind = f["type"] if "fields" not in f else ("[]" if f["type"].startswith("[]") else "") + "struct"
        children = layout(f["fields"], v, flexible, names) if "fields" in f else None
        row = (f["name"] if names else None, f["type"] if names else kind,
               "nullable" in f and v in versions_of(f["nullable"]), compact, children)
        if is_tagged:
            tagged.append((f["tag"], row))
        else:
            plain.append(row)
    return tuple(plain) + tuple(row + (tag,) for tag, row in sorted(tagged))


def merge_message(old: Spec | None, new: Spec | None, new_versions: set[int],
                  unchecked: Collection[int] = ()) -> Spec:
    """One spec: `new` at `new_versions` (its stable ones), `old` at the versions only it defines.

    `unchecked`: shared versions where `old` need not agree (it marked them unstable).
    """
    base = new if new is not None and new_versions else old
    assert base is not None
    old_all = versions_of(old["versions"]) if old is not None else set()
    new_set = new_versions if new is not None else set()
    old_set = old_all - new_set
    everything = old_set | new_set
    top = max(everything)
    src_old, src_new = old or _EMPTY, new or _EMPTY
    flex_old, flex_new = versions_of(src_old["flexible"], top), versions_of(src_new["flexible"], top)
    for v in sorted((old_all & new_set) - set(unchecked)):
        if layout(src_old["fields"], v, v in flex_old, False) != layout(src_new["fields"], v, v in flex_new, False):
            raise MergeError(f"{base['name']} v{v}: the two releases disagree on the wire layout")
    merged: Spec = {k: v for k, v in base.items() if k not in ("versions", "flexible", "fields")}
    lo = min(everything)
    if everything != set(range(lo, top + 1)):
        raise MergeError(f"{base['name']}: versions {sorted(everything)} are not one range")
    merged["versions"] = f"{lo}-{top}" if lo != top else str(lo)
    flexible = (flex_old & old_set) | (flex_new & new_set)
    merged["flexible"] = render(flexible, top, [src_new["flexible"], src_old["flexible"]], everything)
    merged["fields"] = merge_fields(src_old["fields"], src_new["fields"], old_set, new_set, top)
    for v, src, flex in [(v, src_old, flex_old) for v in old_set] + [(v, src_new, flex_new) for v in new_set]:
        if layout(merged["fields"], v, v in flexible, True) != layout(src["fields"], v, v in flex, True):
            raise MergeError(f"{base['name']} v{v}: the merged spec differs from its source")
    return merged


_EMPTY: Spec = {"versions": "none", "flexible": "none", "fields": []}


def merge_fields(old: list[Field], new: list[Field], old_set: set[int], new_set: set[int],
                 top: int) -> list[Field]:
    """Fields of both lists, each with its versions from both; old-only fields keep their place."""
    olds = [f for f in old if versions_of(f["versions"], top) & old_set]
    news = [f for f in new if versions_of(f["versions"], top) & new_set]
    partner = {id(o): n for o in olds for n in news if (o["name"], o["type"]) == (n["name"], n["type"])}
    out = [_merge_field(next((o for o in olds if partner.get(id(o)) is n), None), n, old_set, new_set, top)
           for n in news]
    position = 0  # where the next old-only field goes: after the last old field placed
    for o in olds:
        n = partner.get(id(o))
        if n is not None:
            position = next(i for i, f in enumerate(out) if f["_from_new"] is n) + 1
        else:
            out.insert(position, _merge_field(o, None, old_set, new_set, top))
            position += 1
    for f in out:
        del f["_from_new"]
    return out


def _merge_field(o: Field | None, n: Field | None, old_set: set[int], new_set: set[int], top: int) -> Field:
    base = n if n is not None else o
    assert base is not None
    if o is not None and n is not None:
        for key in ("tag", "flexible"):
            if o.get(key, n.get(key)) != n.get(key, o.get(key)):
                raise MergeError(f"field {o['name']}: {key} {o[key]!r} vs {n[key]!r}")
        if o.get("default", _EMPTY) != n.get("default", _EMPTY):  # it decides whether a tagged field is sent
            raise MergeError(f"field {o['name']}: default {o.get('default')!r} vs {n.get('default')!r}")
    present_old = versions_of(o["versions"], top) & old_set if o else set()
    present_new = versions_of(n["versions"], top) & new_set if n else set()
    out: Field = {"name": base["name"], "type": base["type"]}
    for key in _RANGE_KEYS:
        within = present_old | present_new if key != "versions" else old_set | new_set
        wanted = (versions_of(o.get(key, "none"), top) & present_old if o else set()) | (
            versions_of(n.get(key, "none"), top) & present_new if n else set())
        if key == "versions" or wanted:
            out[key] = render(wanted, top, [f.get(key) for f in (n, o) if f is not None], within)
            if key == "tagged":
                out["tag"] = base.get("tag", (o or {}).get("tag"))
    for key in ("flexible", "default"):
        if key in base:
            out[key] = base[key]
    if "fields" in base:
        out["fields"] = merge_fields(o["fields"] if o else [], n["fields"] if n else [],
                                     present_old, present_new, top)
    out["_from_new"] = n
    return out
