"""Plain-text tables as the Kafka command-line tools print them: padded columns, '-' for none."""

from __future__ import annotations


def dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
