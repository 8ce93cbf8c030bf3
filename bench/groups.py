"""Time from subscribe() to the first assignment, librdkafka defaults. Run by hand:

    python bench/groups.py [--rounds 5]

For a fresh group of 1 and of 4 members (started together), prints the time until every member
has its first non-empty assignment: what a developer waits for before a consumer starts working.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from pykbroker.testing import running_broker


def time_to_assignment(bs: str, topic: str, members: int) -> float:
    group = f"bench-{uuid.uuid4().hex[:8]}"
    done = [threading.Event() for _ in range(members)]
    consumers = [Consumer({"bootstrap.servers": bs, "group.id": group}) for _ in range(members)]
    started = time.perf_counter()
    for i, c in enumerate(consumers):
        c.subscribe([topic], on_assign=lambda _c, parts, e=done[i]: e.set() if parts else None)

    def poll(c: Consumer, event: threading.Event) -> None:
        while not event.is_set() and time.perf_counter() - started < 30:
            c.poll(0.05)

    threads = [threading.Thread(target=poll, args=(c, e)) for c, e in zip(consumers, done)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    for c in consumers:
        c.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with running_broker() as broker:
        bs = broker.bootstrap_servers
        admin = AdminClient({"bootstrap.servers": bs})
        for f in admin.create_topics([NewTopic("bench-groups", 8, 1)]).values():
            f.result(10)
        for members in (1, 4):
            times = [time_to_assignment(bs, "bench-groups", members) for _ in range(args.rounds)]
            print(f"{members} member(s): first assignment after median {statistics.median(times) * 1000:.0f} ms"
                  f" (min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}, {args.rounds} rounds)")


if __name__ == "__main__":
    main()
