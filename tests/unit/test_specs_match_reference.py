"""protocol_specs/ and the schemas built from them agree with Kafka 3.9.1's own definitions.

The reference is read here independently of protocol_specs/generate.py: for every message and
every version, the fields present, their types, nullability, compactness and tags must match.
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
        out.append(json.loads(re.sub(r"^\s*//.*$", "", path.read_text(), flags=re.M)))
    return out


def test_every_reference_message_has_a_spec(kafka_reference: Path) -> None:
    ours = {load_spec(s)["name"] for s in spec_names()}
    theirs = {m["name"] for m in reference_messages(kafka_reference)}
    assert ours == theirs


def test_every_version_of_every_message_matches(kafka_reference: Path) -> None:
    by_name = {load_spec(s)["name"]: load_spec(s) for s in spec_names()}
    checked = 0
    for ref in reference_messages(kafka_reference):
        spec = by_name[ref["name"]]
        assert spec["versions"] == ref["validVersions"], ref["name"]
        assert spec.get("api_key") == ref.get("apiKey"), ref["name"]
        common = {c["name"]: c["fields"] for c in ref.get("commonStructs", [])}
        lo, _, hi = ref["validVersions"].partition("-")
        for v in range(int(lo), int(hi or lo) + 1):
            flexible = in_range(ref.get("flexibleVersions", "none"), v)
            want = normalise(expected(ref["fields"], common, v, flexible))
            got = flatten_actual(actual(struct_at(spec, v)))
            assert got == want, f"{ref['name']} v{v}"
            checked += 1
    assert checked > 600


def test_api_keys_match(kafka_reference: Path) -> None:
    rows = list(csv.DictReader((kafka_reference / "api-keys.tsv").open(), delimiter="\t"))
    assert [(int(r["api_key"]), r["name"], int(r["oldest"]), int(r["latest"])) for r in rows] == [
        (e["api_key"], e["name"], e["min_version"], e["max_version"]) for e in api_keys()]


def test_error_codes_match(kafka_reference: Path) -> None:
    from pykbroker.protocol.errors import ErrorCode
    rows = list(csv.DictReader((kafka_reference / "errors.tsv").open(), delimiter="\t"))
    assert len(rows) == len(ErrorCode)
    for r in rows:
        code = ErrorCode[r["name"]]
        assert code == int(r["code"])
        assert code.retriable == (r["retriable"] == "true")


@pytest.mark.parametrize("stem", ["produce_request", "fetch_response", "metadata_response"])
def test_specs_are_regenerated_identically(kafka_reference: Path, stem: str, tmp_path: Path) -> None:
    """The committed specs are exactly what the generator writes (nobody hand-edited them)."""
    import importlib.util
    gen_path = Path(__file__).resolve().parents[2] / "protocol_specs" / "generate.py"
    spec = importlib.util.spec_from_file_location("generate", gen_path)
    gen = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(gen)
    source = next(m for m in (kafka_reference / "message").glob("*.json")
                  if gen.message_file_stem(gen.load_json_with_comments(m)["name"]) == stem)
    text = gen.dump_message(gen.convert_message(gen.load_json_with_comments(source)))
    assert text == (gen_path.parent / f"{stem}.json").read_text()
