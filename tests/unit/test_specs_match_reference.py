"""protocol_specs/ and the schemas built from them agree with Kafka 3.9.1's and 4.x's own definitions.

The references are read here independently of protocol_specs/generate.py: for every message and
every version, the fields present, their types, nullability, compactness and tags must match the
release the spec takes that version from (4.x where 4.x has it stably, 3.9.1 elsewhere), and
versions both define must look the same on the wire in both. 4.x's definitions come from the
set-up script (tests/tools/setup_kafka_messages.sh); if it cannot run, these tests fail.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest

from pykbroker.protocol import primitives as p
from pykbroker.protocol.schema import api_keys, load_spec, spec_names, struct_at

PRIMS = {"int8", "int16", "int32", "int64", "uint16", "uint32", "float64", "bool",
         "uuid", "string", "bytes", "records"}


def in_range(text: str, v: int) -> bool:
    if text == "none":
        return False
    if text.endswith("+"):
        return v >= int(text[:-1])
    lo, _, hi = text.partition("-")
    return int(lo) <= v <= int(hi or lo)


def camel_to_snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def expected(fields: list[dict[str, Any]], common: dict[str, Any], v: int, flexible: bool) -> list[Any]:
    out = []
    for f in fields:
        if not in_range(f["versions"], v):
            continue
        t = f["type"]
        elem = t[2:] if t.startswith("[]") else t
        tagged = flexible and "taggedVersions" in f and in_range(f["taggedVersions"], v)
        compact = flexible and f.get("flexibleVersions") != "none"
        children = None
        if elem not in PRIMS:
            children = expected(f.get("fields") or common[elem], common, v, flexible)
        out.append((
            camel_to_snake(f["name"]), t,
            "nullableVersions" in f and in_range(f["nullableVersions"], v),
            int(f["tag"]) if tagged else None,
            compact if (t.startswith("[]") or elem in ("string", "bytes", "records")) else None,
            children,
        ))
    return out


def actual(st: p.KStruct) -> list[Any]:
    fields = [(f, None) for f in st.fields] + [(f, f.tag) for f in st.tagged]
    by_wire: list[Any] = []
    for f, tag in fields:
        by_wire.append((f.name, *describe(f.type), tag, f))
    return by_wire


def describe(t: p.KafkaType) -> tuple[str, bool, bool | None, Any]:
    """(kafka type, nullable, compact, children) of one construct type."""
    if isinstance(t, p.NullableStruct):
        _, _, _, children = describe(t.struct_type)
        return t.struct_type.name, True, None, children
    if isinstance(t, p.KStruct):
        return t.name, False, None, actual(t)
    if isinstance(t, p.Array):
        name, _, _, children = describe(t.element)
        return "[]" + name, t.nullable, t.compact, children
    if isinstance(t, p.Fixed):
        return t.kafka_type, False, None, None
    if isinstance(t, p.Uuid):
        return "uuid", False, None, None
    kind = {p.Records: "records", p.String: "string", p.Bytes: "bytes"}[type(t)]
    return kind, t.nullable, t.compact, None


def normalise(rows: list[Any]) -> list[Any]:
    """Expected rows in our order: wire fields first, then tagged ones by tag."""
    plain = [r for r in rows if r[3] is None]
    tagged = sorted((r for r in rows if r[3] is not None), key=lambda r: r[3])
    return [(r[0], r[1], r[2], r[3], r[4], normalise(r[5]) if r[5] is not None else None)
            for r in plain + tagged]


def flatten_actual(rows: list[Any]) -> list[Any]:
    return [(name, ktype, nullable, tag, compact, flatten_actual(children) if children is not None else None)
            for name, ktype, nullable, compact, children, tag, _ in rows]


def reference_messages(ref: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted((ref / "message").glob("*.json")):
        msg = json.loads(re.sub(r"^\s*//.*$", "", path.read_text(), flags=re.M))
        if msg["validVersions"] != "none":  # 4.x keeps the files of removed APIs, with no versions
            out.append(msg)
    return out


def key(msg: dict[str, Any]) -> Any:
    """Requests and responses by API key (4.x renamed ListClientMetricsResources), the rest by name."""
    return (msg["apiKey"], msg["type"]) if "apiKey" in msg else msg["name"]


def all_versions(msg: dict[str, Any]) -> set[int]:
    lo, _, hi = msg["validVersions"].partition("-")
    return set(range(int(lo), int(hi or lo) + 1))


def stable_versions(ref: list[dict[str, Any]]) -> dict[Any, set[int]]:
    """Each message's versions minus the one its request marks `latestVersionUnstable`."""
    requests = {m["apiKey"]: m for m in ref if m["type"] == "request"}
    out = {}
    for m in ref:
        versions = all_versions(m)
        if requests.get(m.get("apiKey"), m).get("latestVersionUnstable", False):
            versions.discard(max(versions))
        out[key(m)] = versions
    return out


def without_names(rows: list[Any]) -> list[Any]:
    """Only what is on the wire: field and struct names dropped (4.x renamed some, compatibly)."""
    return [(None, ("[]" if t.startswith("[]") else "") + "struct" if children is not None else t,
             nullable, tag, compact, without_names(children) if children is not None else None)
            for _, t, nullable, tag, compact, children in rows]


def layout_at(ref: dict[str, Any], v: int) -> list[Any]:
    common = {c["name"]: c["fields"] for c in ref.get("commonStructs", [])}
    flexible = in_range(ref.get("flexibleVersions", "none"), v)
    return normalise(expected(ref["fields"], common, v, flexible))


@pytest.fixture(scope="module")
def releases(kafka_reference: Path, kafka4_reference: Path) -> tuple[list[Any], list[Any]]:
    return reference_messages(kafka_reference), reference_messages(kafka4_reference)


def our_specs() -> dict[Any, dict[str, Any]]:
    specs = [load_spec(s) for s in spec_names()]
    return {(s["api_key"], s["type"]) if "api_key" in s else s["name"]: s for s in specs}


def test_every_reference_message_has_a_spec(releases: tuple[list[Any], list[Any]]) -> None:
    old, new = releases
    names = {key(m): m["name"] for m in old} | {key(m): m["name"] for m in new}
    assert {k: s["name"] for k, s in our_specs().items()} == names
    assert len(names) > len(old) and len(names) > len(new)


def test_every_version_of_every_message_matches(releases: tuple[list[Any], list[Any]]) -> None:
    """4.x's definition where 4.x has the version (stable), 3.9.1's elsewhere; shared ones agree on the wire."""
    old, new = releases
    ours = our_specs()
    old_all, old_stable, new_stable = {key(m): all_versions(m) for m in old}, stable_versions(old), stable_versions(new)
    checked = shared = 0
    for release, versions in ((old, old_all), (new, new_stable)):
        for ref in release:
            k = key(ref)
            spec = ours[k]
            assert spec.get("api_key") == ref.get("apiKey"), ref["name"]
            for v in sorted(versions[k]):
                got = flatten_actual(actual(struct_at(spec, v)))
                want = layout_at(ref, v)
                if release is new or v not in new_stable.get(k, set()):
                    assert got == want, f"{ref['name']} v{v}"
                    checked += 1
                elif v in old_stable[k]:  # 4.x redefined what 3.9.1 marked unstable: no need to agree
                    assert without_names(got) == without_names(want), f"{ref['name']} v{v}: 3.9.1 and 4.x differ"
                    shared += 1
    assert checked > 700 and shared > 400


def versions_text(versions: set[int]) -> str:
    return f"{min(versions)}-{max(versions)}" if len(versions) > 1 else str(min(versions))


def test_spec_versions_are_the_union(releases: tuple[list[Any], list[Any]]) -> None:
    old, new = releases
    union = {key(ref): all_versions(ref) for ref in old}
    for k, versions in stable_versions(new).items():
        union[k] = union.get(k, set()) | versions
    assert {k: s["versions"] for k, s in our_specs().items()} == {k: versions_text(v) for k, v in union.items()}
    assert 6 not in union[(22, "request")] and 6 not in union[(22, "response")]  # unstable in 4.4


def api_key_rows(ref: Path) -> dict[int, dict[str, str]]:
    with (ref / "api-keys.tsv").open() as f:
        return {int(r["api_key"]): r for r in csv.DictReader(f, delimiter="\t")}


def test_api_keys_match(kafka_reference: Path, kafka4_reference: Path) -> None:
    old, new = api_key_rows(kafka_reference), api_key_rows(kafka4_reference)
    want = {}
    for k in sorted(old.keys() | new.keys()):
        o, n = old.get(k), new.get(k)
        lows = [int(r["oldest"]) for r in (o, n) if r]
        highs = [int(o["latest"])] if o else []
        want[k] = ((n or o)["name"], min(lows), max(highs + ([int(n["latest_stable"])] if n else [])))
    assert {e["api_key"]: (e["name"], e["min_version"], e["max_version"]) for e in api_keys()} == want


def test_error_codes_match(kafka_reference: Path, kafka4_reference: Path) -> None:
    from pykbroker.protocol.errors import ErrorCode
    rows: dict[int, dict[str, str]] = {}
    for ref in (kafka_reference, kafka4_reference):
        with (ref / "errors.tsv").open() as f:
            for r in csv.DictReader(f, delimiter="\t"):
                assert rows.get(int(r["code"]), r)["name"] == r["name"]
                rows[int(r["code"])] = r
    assert len(rows) == len(ErrorCode) > 130
    for code, r in rows.items():
        assert ErrorCode[r["name"]] == code
        assert ErrorCode[r["name"]].retriable == (r["retriable"] == "true")
        assert ErrorCode[r["name"]].message == r["default_message"]


def test_specs_are_regenerated_identically(kafka_reference: Path, kafka4_reference: Path) -> None:
    """The committed specs, api_keys.json and errors.py are exactly what the generator writes."""
    import importlib.util
    root = Path(__file__).resolve().parents[2]
    gen_path = root / "protocol_specs" / "generate.py"
    spec = importlib.util.spec_from_file_location("generate", gen_path)
    gen = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(gen)
    messages = gen.merged_messages(kafka_reference, kafka4_reference)
    written = {f"{gen.message_file_stem(m['name'])}.json": gen.dump_message(m) for m in messages}
    written["api_keys.json"] = gen.generate_api_keys(kafka_reference, kafka4_reference, messages)
    committed = {p.name: p.read_text() for p in gen_path.parent.glob("*.json")}
    assert committed == written
    errors = gen.generate_errors(gen.merged_errors(kafka_reference, kafka4_reference))
    assert (root / "pykbroker" / "protocol" / "errors.py").read_text() == errors
