"""Client byte-rate quotas, pykbroker and Apache Kafka 4.4.0 side by side. Run by hand:

    python bench/quota_rate.py [--quota-kib 1024] [--seconds 5] [--no-kafka]

For quota.window.num 1 and 11 (Kafka's default; quota.window.size.seconds 1): a confluent-kafka
producer with a producer_byte_rate quota produces 1000-byte values flat out, and a consumer with a
consumer_byte_rate quota reads a filled partition flat out, each for --seconds. Prints the observed
rate (value bytes acknowledged or received per second) against the quota, and the largest throttle
time the producer was told. With 11 samples a new client first gets (11 - 1) s of quota at once
(Kafka's Rate assumes that much history), so its rate over a few seconds is far above the quota on
both brokers; with 1 sample the steady rate shows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from compat.checks.quotas import consume_flat_out, fill, produce_flat_out, set_quota  # noqa: E402
from compat.reference import kafka_reference  # noqa: E402
from pykbroker.testing import running_broker  # noqa: E402


def measure(bootstrap: str, quota: float, seconds: float) -> tuple[float, int, float]:
    """(producer rate, largest throttle ms, consumer rate) under `quota` bytes/s each."""
    topic, tag = f"quota-bench-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:6]
    producer_id, consumer_id = f"bench-producer-{tag}", f"bench-consumer-{tag}"
    set_quota(bootstrap, producer_id, "producer_byte_rate", quota)
    acked, elapsed, throttle = produce_flat_out(bootstrap, topic, producer_id, seconds)
    fill(bootstrap, topic, int(quota * (seconds + 12) / 1e6) + 1)
    set_quota(bootstrap, consumer_id, "consumer_byte_rate", quota)
    received, taken = consume_flat_out(bootstrap, topic, consumer_id, seconds)
    return acked / elapsed, throttle, received / taken


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quota-kib", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--no-kafka", action="store_true", help="pykbroker only")
    args = parser.parse_args()
    quota = args.quota_kib * 1024.0
    brokers: dict[str, Callable[[dict], AbstractContextManager]] = {
        "pykbroker": lambda o: running_broker(o, data_dir=Path(tempfile.mkdtemp()) / "data")}
    if not args.no_kafka:
        brokers["kafka-4.4.0"] = lambda o: kafka_reference(overrides=o)
    print(f"quota {args.quota_kib} KiB/s, {args.seconds:.0f} s flat out; rates in KiB/s of values (ratio to quota)")
    print(f"{'broker':12} {'window.num':>10} {'produce':>16} {'max throttle':>13} {'consume':>16}")
    for samples in (1, 11):
        for name, start in brokers.items():
            with start({"quota.window.num": samples, "quota.window.size.seconds": 1}) as broker:
                produce, throttle, consume = measure(broker.bootstrap_servers, quota, args.seconds)
            print(f"{name:12} {samples:>10} {produce / 1024:>9.0f} ({produce / quota:.2f}) {throttle:>10} ms "
                  f"{consume / 1024:>9.0f} ({consume / quota:.2f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
