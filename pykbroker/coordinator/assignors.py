"""Server-side partition assignors of the consumer group protocol (KIP-848): "uniform" and "range".

Both take the members' subscriptions and the partition counts of the subscribed topics and return,
per member, {topic: set of partitions}. Uniform is sticky: partitions stay with their previous owner
while that owner is within its fair share.
"""

from __future__ import annotations

from typing import Mapping

Assignment = dict[str, set[int]]


def range_assign(subscriptions: Mapping[str, set[str]], partitions: Mapping[str, int],
                 previous: Mapping[str, Assignment] | None = None) -> dict[str, Assignment]:
    """Per topic, contiguous ranges over the sorted subscribers (the first n % m get one more)."""
    out: dict[str, Assignment] = {m: {} for m in subscriptions}
    for topic, count in sorted(partitions.items()):
        members = sorted(m for m, topics in subscriptions.items() if topic in topics)
        if not members:
            continue
        base, extra = divmod(count, len(members))
        start = 0
        for i, m in enumerate(members):
            size = base + (1 if i < extra else 0)
            if size:
                out[m][topic] = set(range(start, start + size))
            start += size
    return out


def uniform_assign(subscriptions: Mapping[str, set[str]], partitions: Mapping[str, int],
                   previous: Mapping[str, Assignment] | None = None) -> dict[str, Assignment]:
    """Even spread over all subscribed partitions, keeping previous owners within their quota."""
    previous = previous or {}
    out: dict[str, Assignment] = {m: {} for m in subscriptions}
    counts = {m: 0 for m in subscriptions}
    all_parts = [(t, p) for t, n in sorted(partitions.items()) for p in range(n)
                 if any(t in s for s in subscriptions.values())]
    if not subscriptions or not all_parts:
        return out
    floor, extra = divmod(len(all_parts), len(subscriptions))  # `extra` members may hold floor + 1
    unassigned = []
    for t, p in all_parts:
        owner = next((m for m, a in previous.items() if p in a.get(t, ()) and m in subscriptions), None)
        keep = owner is not None and t in subscriptions[owner] and (
            counts[owner] < floor or (counts[owner] == floor and extra > 0))
        if keep:
            assert owner is not None
            if counts[owner] == floor:
                extra -= 1
            out[owner].setdefault(t, set()).add(p)
            counts[owner] += 1
        else:
            unassigned.append((t, p))
    for t, p in unassigned:
        candidates = [m for m in sorted(subscriptions) if t in subscriptions[m]]
        m = min(candidates, key=lambda c: counts[c])
        out[m].setdefault(t, set()).add(p)
        counts[m] += 1
    return out


ASSIGNORS = {"uniform": uniform_assign, "range": range_assign}
