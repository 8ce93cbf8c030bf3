"""The matrix (rows = features, columns = clients), the details, the closing count line, and JSON."""

from __future__ import annotations

import json
from typing import Sequence

from .features import CLIENTS, FEATURES
from .result import FAIL, PASS, SKIP, XFAIL, Result


def counts(results: Sequence[Result]) -> dict[str, int]:
    return {name: sum(1 for r in results if r.status == status)
            for name, status in (("passed", PASS), ("failed", FAIL), ("skipped", SKIP), ("xfailed", XFAIL))}


def summary_line(results: Sequence[Result]) -> str:
    """`N passed, N failed, N skipped` (`, N xfailed` when the allowlist turned failures into XFAILs)."""
    c = counts(results)
    line = f"{c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped"
    if c["xfailed"]:
        line += f", {c['xfailed']} xfailed"
    return line


def matrix(results: Sequence[Result]) -> str:
    cells = {(r.client, r.feature): r.status for r in results}
    clients = [c for c in CLIENTS if any(r.client == c for r in results)]
    features = [f for f in FEATURES if any(r.feature == f for r in results)]
    header = ["feature", *clients]
    rows = [[f, *(cells.get((c, f), "-") for c in clients)] for f in features]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def details(results: Sequence[Result], verbose: bool = False) -> str:
    out: list[str] = []
    failed = [r for r in results if r.status in (FAIL, XFAIL)]
    if failed:
        out.append("Failures:")
        for r in failed:
            out.append(f"  {r.status:5} {r.check_id}: {r.reason}" + (f" ({r.note})" if r.note else ""))
            if verbose and r.log_tail:
                out.extend("        | " + line for line in r.log_tail.splitlines())
    skipped = [r for r in results if r.status == SKIP]
    if skipped:
        out.append("Skipped:")
        by_reason: dict[tuple[str, str], list[str]] = {}
        for r in skipped:
            by_reason.setdefault((r.client, r.reason), []).append(r.feature)
        for (client, reason), feats in by_reason.items():
            total = sum(1 for r in results if r.client == client)
            which = "all its checks" if len(feats) == total and total > 1 else ", ".join(feats)
            out.append(f"  {client} {which}: {reason}")
    return "\n".join(out)


def text(results: Sequence[Result], meta: dict, verbose: bool = False) -> str:
    versions = ", ".join(f"{c} {v}" for c, v in meta.get("clients", {}).items() if v)
    head = [f"Kafka compatibility suite against {meta['bootstrap']} ({meta['date']}): "
            f"{len(results)} checks in {meta['duration_s']:.1f} s"]
    if versions:
        head.append(f"clients: {versions}")
    parts = ["\n".join(head), matrix(results)]
    more = details(results, verbose)
    if more:
        parts.append(more)
    parts.append(summary_line(results))
    return "\n\n".join(parts)


def as_json(results: Sequence[Result], meta: dict) -> str:
    return json.dumps({**meta, "summary": counts(results), "results": [r.to_dict() for r in results]}, indent=2)
