"""Regenerate protocol_specs/*.json and pykbroker/protocol/errors.py from Kafka's message definitions.

Usage:  python protocol_specs/generate.py [KAFKA_3_9_DIR [KAFKA_4_DIR]]
        (defaults: ../shared/kafka-protocol, and what tests/tools/setup_kafka_messages.sh sets up)

Two releases are read: Kafka 3.9.1 (every version current clients may send, before KIP-896 removed
the old ones) and Kafka 4.x (new versions and APIs). Each message's spec covers every version
either defines, except versions 4.x marks unstable (see merge_releases.py). Definitions are
normalised and written in the project's own format: one JSON file per message, fields in wire
order, snake_case names, common structs inlined, defaults typed. Nothing from the source files
(comments, docs, licence headers) is carried over: only facts.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from merge_releases import MergeError, merge_message, versions_of  # noqa: E402  (run as a script)

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
DEFAULT_SOURCE = PROJECT.parent / "shared" / "kafka-protocol"
SETUP_KAFKA4 = PROJECT / "tests" / "tools" / "setup_kafka_messages.sh"

PRIMITIVES = {
    "int8", "int16", "int32", "int64", "uint16", "uint32", "float64",
    "bool", "uuid", "string", "bytes", "records",
}


def snake(name: str) -> str:
    """Kafka's CamelCase field names as Python attribute names (ThrottleTimeMs -> throttle_time_ms)."""
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    return s.lower()


def message_file_stem(name: str) -> str:
    return snake(name)


def load_json_with_comments(path: Path) -> dict[str, Any]:
    text = re.sub(r"^\s*//.*$", "", path.read_text(), flags=re.M)
    return json.loads(text)


def typed_default(kafka_type: str, raw: Any) -> Any:
    """Kafka writes defaults as strings ("-1", "0x7fffffff", "null", "false"); store them typed."""
    if raw == "null" or raw is None:
        return None
    if kafka_type == "bool":
        return raw if isinstance(raw, bool) else raw == "true"
    if kafka_type in ("int8", "int16", "int32", "int64", "uint16", "uint32"):
        return raw if isinstance(raw, int) else int(raw, 0)
    if kafka_type == "float64":
        return float(raw)
    return raw


def element_type(kafka_type: str) -> str:
    return kafka_type[2:] if kafka_type.startswith("[]") else kafka_type


def convert_fields(fields: list[dict[str, Any]], common: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    out = []
    for f in fields:
        ktype = f["type"]
        spec: dict[str, Any] = {"name": snake(f["name"]), "type": ktype, "versions": f["versions"]}
        if "nullableVersions" in f:
            spec["nullable"] = f["nullableVersions"]
        if "taggedVersions" in f:
            spec["tagged"] = f["taggedVersions"]
            spec["tag"] = int(f["tag"])
        if "flexibleVersions" in f:
            spec["flexible"] = f["flexibleVersions"]
        if "default" in f:
            spec["default"] = typed_default(element_type(ktype), f["default"])
        etype = element_type(ktype)
        if etype not in PRIMITIVES:
            sub = f.get("fields")
            if sub is None:
                sub = common[etype]
            spec["fields"] = convert_fields(sub, common)
        out.append(spec)
    return out


def convert_message(src: dict[str, Any]) -> dict[str, Any]:
    common = {s["name"]: s["fields"] for s in src.get("commonStructs", [])}
    msg: dict[str, Any] = {"name": src["name"], "type": src["type"]}
    if "apiKey" in src:
        msg["api_key"] = src["apiKey"]
    msg["versions"] = src["validVersions"]
    msg["flexible"] = src.get("flexibleVersions", "none")
    msg["fields"] = convert_fields(src["fields"], common)
    return msg


def dump_message(msg: dict[str, Any]) -> str:
    """One field per line, nested structs indented: readable and diff-friendly."""
    head = {k: v for k, v in msg.items() if k != "fields"}
    lines = ["{" + json.dumps(head)[1:-1] + ', "fields": [']
    _dump_fields(msg["fields"], lines, 1)
    lines.append("]}")
    return "\n".join(lines) + "\n"


def _dump_fields(fields: list[dict[str, Any]], lines: list[str], depth: int) -> None:
    pad = "  " * depth
    for i, f in enumerate(fields):
        sep = "," if i < len(fields) - 1 else ""
        flat = {k: v for k, v in f.items() if k != "fields"}
        if "fields" in f:
            lines.append(pad + "{" + json.dumps(flat)[1:-1] + ', "fields": [')
            _dump_fields(f["fields"], lines, depth + 1)
            lines.append(pad + "]}" + sep)
        else:
            lines.append(pad + json.dumps(flat) + sep)


def tsv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f, delimiter="\t"))


def merged_errors(old: Path, new: Path) -> list[dict[str, str]]:
    """Every error code of either release; a code both define must have the same name and retriability."""
    rows = {int(r["code"]): r for r in tsv(old / "errors.tsv")}
    for r in tsv(new / "errors.tsv"):
        seen = rows.get(int(r["code"]))
        if seen is not None and (seen["name"], seen["retriable"]) != (r["name"], r["retriable"]):
            raise MergeError(f"error {r['code']}: {seen['name']}/{seen['retriable']} vs {r['name']}/{r['retriable']}")
        rows[int(r["code"])] = r  # the newer default message
    return [rows[c] for c in sorted(rows)]


def generate_errors(rows: list[dict[str, str]]) -> str:
    out = [
        '"""Kafka protocol error codes. Generated by protocol_specs/generate.py; do not edit."""',
        "",
        "from __future__ import annotations",
        "",
        "import enum",
        "",
        "",
        "class ErrorCode(enum.IntEnum):",
        '    """Every error code of Kafka 3.9 and 4.x, with Kafka\'s names; `retriable` and `message` as Kafka defines them."""',
        "",
    ]
    for r in rows:
        out.append(f"    {r['name']} = {int(r['code'])}")
    out += [
        "",
        "    @property",
        "    def retriable(self) -> bool:",
        "        return self in _RETRIABLE",
        "",
        "    @property",
        "    def message(self) -> str:",
        "        return _MESSAGES.get(self, '')",
        "",
        "",
        "_RETRIABLE = frozenset({",
    ]
    out += [f"    ErrorCode.{r['name']}," for r in rows if r["retriable"] == "true"]
    out += ["})", "", "_MESSAGES = {"]
    out += [f"    ErrorCode.{r['name']}: {r['default_message']!r}," for r in rows if r["default_message"]]
    out += ["}", ""]
    return "\n".join(out)


def generate_api_keys(old: Path, new: Path, specs: list[dict[str, Any]]) -> str:
    """Every API key of either release: the newest name and listeners, versions from the merged specs."""
    rows = {int(r["api_key"]): r for r in tsv(old / "api-keys.tsv")}
    rows.update({int(r["api_key"]): r for r in tsv(new / "api-keys.tsv")})
    requests = {m["api_key"]: m for m in specs if m["type"] == "request"}
    lines = ["["]
    for i, key in enumerate(sorted(rows)):
        r, lo, _, hi = rows[key], *requests[key]["versions"].partition("-")
        entry = {
            "api_key": key, "name": r["name"], "min_version": int(lo), "max_version": int(hi or lo),
            "listeners": [x.strip() for x in r["listeners"].strip("[]").split(",")],
        }
        lines.append(" " + json.dumps(entry) + ("," if i < len(rows) - 1 else ""))
    lines.append("]")
    return "\n".join(lines) + "\n"


def kafka4_reference() -> Path:
    """Kafka 4.x's definitions, fetched into .tools/ by the set-up script (which says why it fails)."""
    done = subprocess.run([str(SETUP_KAFKA4)], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{SETUP_KAFKA4.relative_to(PROJECT)} failed (exit {done.returncode})")
    return Path(done.stdout.strip().splitlines()[-1])


def _key(raw: dict[str, Any]) -> Any:
    """Requests and responses pair up by API key (4.x renamed some), everything else by name."""
    return (raw["apiKey"], raw["type"]) if "apiKey" in raw else raw["name"]


def _read(source: Path) -> dict[Any, dict[str, Any]]:
    raws = [load_json_with_comments(p) for p in sorted((source / "message").glob("*.json"))]
    return {_key(r): r for r in raws if r["validVersions"] != "none"}


def unstable(raw: dict[str, Any], by_key: dict[Any, dict[str, Any]]) -> set[int]:
    """The version a release marks unstable (a request's latest; its response's too), if any."""
    request = by_key.get((raw["apiKey"], "request")) if "apiKey" in raw else raw
    if request is None or not request.get("latestVersionUnstable", False):
        return set()
    return {max(versions_of(request["validVersions"]))}


def merged_messages(old: Path, new: Path) -> list[dict[str, Any]]:
    """Every message of either release, each one spec over both releases' versions."""
    olds, news = _read(old), _read(new)
    out = []
    for key in sorted(set(olds) | set(news), key=str):
        o, n = olds.get(key), news.get(key)
        stable = versions_of(n["validVersions"]) - unstable(n, news) if n else set()
        if o is None and not stable:
            continue  # a 4.x message with only an unstable version: nothing a released client sends
        out.append(merge_message(o and convert_message(o), n and convert_message(n), stable,
                                 unstable(o, olds) if o else set()))
    return out


def main(argv: list[str]) -> int:
    old = Path(argv[1]) if len(argv) > 1 else DEFAULT_SOURCE
    new = Path(argv[2]) if len(argv) > 2 else kafka4_reference()
    for source in (old, new):
        if not (source / "message").is_dir():
            print(f"error: {source}/message not found (pass the kafka-protocol folders)", file=sys.stderr)
            return 2
    specs = merged_messages(old, new)
    for stale in HERE.glob("*.json"):
        stale.unlink()
    for msg in specs:
        (HERE / f"{message_file_stem(msg['name'])}.json").write_text(dump_message(msg))
    (HERE / "api_keys.json").write_text(generate_api_keys(old, new, specs))
    (PROJECT / "pykbroker" / "protocol" / "errors.py").write_text(generate_errors(merged_errors(old, new)))
    print(f"wrote {len(specs)} message specs, api_keys.json and pykbroker/protocol/errors.py")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
