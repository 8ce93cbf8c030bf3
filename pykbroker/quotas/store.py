"""The configured client quotas: entity -> {key: value}, applied as Kafka's controller applies
AlterClientQuotas, and their file form.

Pure state: the broker persists `to_json()` (atomically, in a worker thread) before installing a
new store, and loads it at start-up; nothing here does I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from ..protocol.errors import ErrorCode
from .entities import QuotaEntity, QuotaError, QuotaFilter, entity_text, validate_entity, validate_value

FILE_NAME = "client-quotas.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Alteration:
    """One AlterClientQuotas entry: the entity's pairs and (key, value or None to remove) ops."""

    pairs: tuple[tuple[str, str | None], ...]
    ops: tuple[tuple[str, float | None], ...]


@dataclass(frozen=True)
class AlterResult:
    pairs: tuple[tuple[str, str | None], ...]
    code: ErrorCode = ErrorCode.NONE
    message: str | None = None


@dataclass(frozen=True)
class QuotaStore:
    entries: Mapping[QuotaEntity, Mapping[str, float]] = field(default_factory=dict)

    def describe(self, quota_filter: QuotaFilter) -> list[tuple[QuotaEntity, Mapping[str, float]]]:
        return [(e, values) for e, values in self.entries.items() if quota_filter.matches(e)]

    def entities_with(self, key: str) -> dict[QuotaEntity, float]:
        """Every entity that sets `key`, with its value."""
        return {e: values[key] for e, values in self.entries.items() if key in values}

    def alter(self, alterations: Iterable[Alteration],
              resolvable: frozenset[str] = frozenset()) -> tuple["QuotaStore", list[AlterResult]]:
        """The store after the valid alterations, and one result per distinct entity (Kafka applies
        each entity's changes or none of them; other entities are unaffected). `resolvable`: the
        host names of ip entities that resolve."""
        entries = {e: dict(v) for e, v in self.entries.items()}
        results: dict[tuple[tuple[str, str | None], ...], AlterResult] = {}
        for alteration in alterations:
            key = tuple(sorted(alteration.pairs))
            keys = [k for k, _ in alteration.ops]
            if key in results or len(set(keys)) != len(keys):
                # Kafka reports a repeated quota key with the repeated-entity message too
                results[key] = AlterResult(alteration.pairs, ErrorCode.INVALID_REQUEST,
                                           f"Ignoring duplicate entity {entity_text(alteration.pairs)}")
                continue
            try:
                _apply(entries, alteration, resolvable)
            except QuotaError as e:
                results[key] = AlterResult(alteration.pairs, e.code, str(e))
            else:
                results[key] = AlterResult(alteration.pairs)
        cleaned = {e: v for e, v in entries.items() if v}
        return QuotaStore(cleaned), list(results.values())

    def to_json(self) -> str:
        return json.dumps({"version": FORMAT_VERSION, "entries": [
            {"entity": [[t, n] for t, n in entity], "quotas": dict(sorted(values.items()))}
            for entity, values in sorted(self.entries.items(), key=lambda kv: str(kv[0]))]}, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "QuotaStore":
        """ValueError naming what is wrong when the text is not a quota file."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise ValueError(f"expected a version {FORMAT_VERSION} client quota file")
        entries: dict[QuotaEntity, dict[str, float]] = {}
        for row in data["entries"]:
            entity, keys = validate_entity((str(t), None if n is None else str(n)) for t, n in row["entity"])
            values: dict[str, float] = {}
            for key, value in row["quotas"].items():
                validate_value(keys, key, float(value))
                values[key] = float(value)
            entries[entity] = values
        return cls(entries)


def _apply(entries: dict[QuotaEntity, dict[str, float]], alteration: Alteration, resolvable: frozenset[str]) -> None:
    entity, keys = validate_entity(alteration.pairs, resolvable)
    current = dict(entries.get(entity, {}))
    for key, value in alteration.ops:
        if value is None:
            current.pop(key, None)
        else:
            validate_value(keys, key, value)
            current[key] = value
    entries[entity] = current
