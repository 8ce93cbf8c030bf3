"""Expected failures for a given broker: lines `CLIENT FEATURE  # reason` (globs allowed, `#` comments).

A FAIL matching a line is reported as XFAIL and does not count as failed; a PASS stays a PASS.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .features import CLIENTS, FEATURES
from .result import FAIL, XFAIL, Result


class AllowlistError(ValueError):
    pass


@dataclass(frozen=True)
class Entry:
    client: str
    feature: str
    reason: str
    line: int

    def matches(self, client: str, feature: str) -> bool:
        return fnmatch.fnmatchcase(client, self.client) and fnmatch.fnmatchcase(feature, self.feature)


def parse(text: str, source: str = "allowlist") -> list[Entry]:
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        body, _, reason = raw.partition("#")
        fields = body.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise AllowlistError(f"{source}:{number}: expected 'CLIENT FEATURE  # reason', got {raw.strip()!r}")
        client, feature = fields
        if not any(fnmatch.fnmatchcase(c, client) for c in CLIENTS):
            raise AllowlistError(f"{source}:{number}: {client!r} matches no client ({', '.join(CLIENTS)})")
        if not any(fnmatch.fnmatchcase(f, feature) for f in FEATURES):
            raise AllowlistError(f"{source}:{number}: {feature!r} matches no feature")
        entries.append(Entry(client, feature, reason.strip(), number))
    return entries


def load(path: str | Path) -> list[Entry]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise AllowlistError(f"cannot read allowlist {path}: {e}") from e
    return parse(text, str(path))


def apply(results: Iterable[Result], entries: list[Entry]) -> list[Result]:
    """Turns allowlisted FAILs into XFAILs (in place); returns the results."""
    results = list(results)
    for r in results:
        if r.status != FAIL:
            continue
        for entry in entries:
            if entry.matches(r.client, r.feature):
                r.status = XFAIL
                r.note = f"allowlisted: {entry.reason}" if entry.reason else "allowlisted"
                break
    return results
