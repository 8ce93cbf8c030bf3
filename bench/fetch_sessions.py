"""Broker CPU per Fetch, full versus incremental (KIP-227 fetch sessions). Run by hand:

    python bench/fetch_sessions.py [--partitions 100] [--fetches 3000] [--rounds 3] [--version 16]

Starts pykbroker (`python -m pykbroker serve`), creates a topic of --partitions partitions with one
record in each, then sends Fetch requests over one socket (pykbroker's wire client), one at a time,
for a consumer that is caught up (every fetch offset at the log end, max_wait_ms 0), as an idle
consumer polls:

  full         sessionless (session id 0, epoch -1): every request names every partition and every
               response lists every partition, as librdkafka fetches
  incremental  one full fetch opens a session, then epochs 1.. name no partition and the response
               lists none, as the Java client fetches when nothing changed

It prints, per mode, the broker's CPU (user + system, /proc/PID/stat) per fetch, request and response
bytes per fetch and fetches per second seen by the client; the median of --rounds rounds, alternated.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broker import cpu_seconds, start_broker, stop_broker  # noqa: E402

from pykbroker.protocol.frame import decode_response, encode_request  # noqa: E402
from pykbroker.protocol.records import Record, build_batch  # noqa: E402
from pykbroker.wire_client import WireClient  # noqa: E402

PRODUCE, FETCH, CREATE_TOPICS = 0, 1, 19


def setup(client: WireClient, topic: str, partitions: int) -> uuid.UUID:
    r = client.request(CREATE_TOPICS, 7, {"topics": [{"name": topic, "num_partitions": partitions,
                                                       "replication_factor": 1}], "timeout_ms": 10000})
    assert r.topics[0].error_code == 0, r
    topic_id = r.topics[0].topic_id
    batch = build_batch([Record(0, 0, None, b"x" * 100, [])])
    r = client.request(PRODUCE, 9, {"acks": -1, "timeout_ms": 5000, "topic_data": [
        {"name": topic, "partition_data": [{"index": p, "records": batch} for p in range(partitions)]}]})
    assert all(p.error_code == 0 for p in r.responses[0].partition_responses), r
    return topic_id


def fetch_body(topic_id: uuid.UUID, partitions: int, session_id: int, epoch: int) -> dict[str, Any]:
    parts = [{"partition": p, "current_leader_epoch": -1, "fetch_offset": 1, "last_fetched_epoch": -1,
              "log_start_offset": -1, "partition_max_bytes": 1 << 20} for p in range(partitions)]
    return {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 50 << 20, "isolation_level": 0,
            "session_id": session_id, "session_epoch": epoch,
            "topics": [{"topic_id": topic_id, "partitions": parts}] if parts else [],
            "forgotten_topics_data": [], "rack_id": ""}


class Mode:
    """One way of fetching: `next_request()` gives the next frame to send."""

    def __init__(self, name: str, next_request: Callable[[], bytes]) -> None:
        self.name = name
        self.next_request = next_request
        self.samples: list[tuple[float, float, float, float]] = []  # cpu µs/fetch, req B, resp B, fetches/s


def run(client: WireClient, pid: int, mode: Mode, fetches: int) -> None:
    sent = received = 0
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    for _ in range(fetches):
        frame = mode.next_request()
        client.send_raw(frame)
        received += len(client.read_frame()) + 4
        sent += len(frame)
    elapsed, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    mode.samples.append((cpu / fetches * 1e6, sent / fetches, received / fetches, fetches / elapsed))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--partitions", type=int, default=100)
    ap.add_argument("--fetches", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--version", type=int, default=16, help="Fetch version (13+: topics by id)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-fetch-sessions-") as data:
        proc, bootstrap, _ = start_broker(data)
        try:
            client = WireClient(bootstrap)
            topic_id = setup(client, "sessions", args.partitions)
            v, correlation = args.version, [0]

            def frame(body: dict[str, Any]) -> bytes:
                correlation[0] += 1
                return bytes(encode_request(FETCH, v, correlation[0], "bench", body))
            full_frame = fetch_body(topic_id, args.partitions, 0, -1)
            session: dict[str, int] = {}

            def incremental() -> bytes:
                if not session:  # open the session once, outside the measured fetches
                    client.send_raw(frame(fetch_body(topic_id, args.partitions, 0, 0)))
                    _, opened = decode_response(FETCH, v, client.read_frame())
                    assert opened.session_id != 0, "the broker opened no fetch session"
                    session.update(id=opened.session_id, epoch=1)
                session["epoch"] += 1
                return frame(fetch_body(topic_id, 0, session["id"], session["epoch"] - 1))
            modes = [Mode("full", lambda: frame(full_frame)), Mode("incremental", incremental)]
            for mode in modes:  # warm-up (and the session opened)
                run(client, proc.pid, mode, min(200, args.fetches))
                mode.samples.clear()
            for _ in range(args.rounds):
                for mode in modes:
                    run(client, proc.pid, mode, args.fetches)
            client.close()
        finally:
            stop_broker(proc)
    print(f"Fetch v{args.version}, {args.partitions} partitions, caught-up consumer (max_wait_ms 0), "
          f"{args.fetches} fetches x {args.rounds} rounds, median:")
    print(f"{'mode':<12} {'broker CPU µs/fetch':>20} {'request B':>10} {'response B':>11} {'fetches/s':>10}")
    for mode in modes:
        cpu, req, resp, rate = (statistics.median(s[i] for s in mode.samples) for i in range(4))
        print(f"{mode.name:<12} {cpu:>20.0f} {req:>10.0f} {resp:>11.0f} {rate:>10.0f}")
    full, inc = (statistics.median(s[0] for s in m.samples) for m in modes)
    print(f"incremental uses {inc / full:.1%} of a full fetch's broker CPU")


if __name__ == "__main__":
    main()
