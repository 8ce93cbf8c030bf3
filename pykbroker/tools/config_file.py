"""`pykbroker serve --config FILE`: Kafka's server.properties format, or TOML.

Both give a flat mapping of Kafka config names to strings, validated by BrokerConfig.from_mapping
like `--set` values.

* properties (any extension but .toml): `key=value`, `key: value` or `key value` lines; `#` and `!`
  start comment lines; a line ending in a backslash continues on the next one; surrounding
  whitespace is dropped. Later lines win, as in Java.
* TOML (.toml): flat dotted keys in quotes (`"num.partitions" = 3`) or nested tables whose names are
  joined with dots (`[log.retention]` + `hours = 24` -> log.retention.hours). Booleans become
  true/false, arrays comma-separated lists (e.g. listeners).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from ..config import ConfigError


def load_config_file(path: str | Path) -> dict[str, str]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file {str(p)!r}: {e.strerror or e}") from None
    if p.suffix.lower() == ".toml":
        return parse_toml(text, str(p))
    return parse_properties(text, str(p))


def parse_properties(text: str, source: str = "<properties>") -> dict[str, str]:
    out: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        start = i + 1
        line = lines[i].lstrip()
        i += 1
        if not line or line[0] in "#!":
            continue
        while _continues(line) and i < len(lines):
            line = line[:-1] + lines[i].lstrip()
            i += 1
        if _continues(line):
            line = line[:-1]
        key, value = _split_property(line)
        if not key:
            raise ConfigError(f"{source}:{start}: expected key=value, got {line.strip()!r}")
        out[key] = value
    return out


def _continues(line: str) -> bool:
    """A line ending in an odd number of backslashes continues on the next line."""
    trailing = len(line) - len(line.rstrip("\\"))
    return trailing % 2 == 1


def _split_property(line: str) -> tuple[str, str]:
    line = line.strip()
    for i, ch in enumerate(line):
        if ch in "=:":
            return _unescape(line[:i].rstrip()), _unescape(line[i + 1:].strip())
        if ch.isspace():
            rest = line[i:].lstrip()
            if rest[:1] in ("=", ":"):
                rest = rest[1:].lstrip()
            return _unescape(line[:i]), _unescape(rest)
    return _unescape(line), ""


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out = []
    it = iter(text)
    for ch in it:
        if ch != "\\":
            out.append(ch)
            continue
        nxt = next(it, "")
        out.append({"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(nxt, nxt))
    return "".join(out)


def parse_toml(text: str, source: str = "<toml>") -> dict[str, str]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from None
    out: dict[str, str] = {}
    _flatten(data, "", out, source)
    return out


def _flatten(table: dict[str, Any], prefix: str, out: dict[str, str], source: str) -> None:
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten(value, name + ".", out, source)
        else:
            out[name] = _toml_value(name, value, source)


def _toml_value(name: str, value: Any, source: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in value):
        return ",".join(str(v) for v in value)
    raise ConfigError(f"{source}: config {name}: a {type(value).__name__} value is not supported "
                      "(use a string, number, boolean or list of those)")
