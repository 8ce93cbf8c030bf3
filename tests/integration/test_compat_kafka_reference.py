"""The compat suite against Apache Kafka itself (compat/reference.py): Kafka is the oracle, so a check that
FAILs here is a wrong check, whatever pykbroker does.

Needs java (>= 17) and mvn on the first run (tests/tools/setup_kafka_broker.sh resolves Kafka 4.4.0 from
Maven Central into .tools/, about 45 MB, once). Without java this FAILs on purpose: CI must not lose the
oracle silently. Run alone with `pytest -m kafka_reference`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from compat import reference  # noqa: E402
from compat.checks import load  # noqa: E402
from compat.features import CLIENTS, FEATURES  # noqa: E402
from compat.result import PASS, SKIP  # noqa: E402

pytestmark = pytest.mark.kafka_reference


@pytest.fixture(scope="module")
def kafka_libs() -> Path:
    try:
        reference.java_command()  # even when Kafka's jars are already in .tools/
        return reference.ensure_kafka()
    except reference.KafkaReferenceError as e:  # java or mvn missing, or Maven Central unreachable
        pytest.fail(f"cannot set up the Apache Kafka reference broker: {e}", pytrace=False)


@pytest.fixture(scope="module")
def kafka(kafka_libs: Path) -> Iterator[reference.RunningKafka]:
    with reference.kafka_reference(kafka_libs) as k:
        yield k


def _allowed_skip(client: str, feature: str, reason: str) -> bool:
    """A SKIP is a gap in the client or harness (the same on every broker), or a client tool not installed
    here (kcat, javac); a failed set-up or any other reason is not."""
    module = load(client)
    return reason in (module.checks.unsupported.get(feature), module.available())


def test_every_compat_check_passes_on_kafka(kafka: reference.RunningKafka) -> None:
    proc = subprocess.run([sys.executable, "-m", "compat", kafka.bootstrap_servers, "--json", "-q"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    data = json.loads(proc.stdout)
    results = data["results"]
    assert len(results) == len(CLIENTS) * len(FEATURES)
    failed = [f"{r['client']}/{r['feature']}: {r['status']} {r['reason']}\n{r.get('log_tail', '')}"
              for r in results if r["status"] not in (PASS, SKIP)]
    assert not failed, ("a check that fails on Apache Kafka is wrong:\n" + "\n".join(failed)
                        + f"\n--- Kafka's warnings and errors:\n{kafka.log_tail(20, problems_only=True)}")
    bad_skips = [f"{r['client']}/{r['feature']}: {r['reason']}" for r in results
                 if r["status"] == SKIP and not _allowed_skip(r["client"], r["feature"], r["reason"])]
    assert not bad_skips, "skipped for a reason other than a client gap:\n" + "\n".join(bad_skips)
    assert proc.returncode == 0, proc.stderr[-3000:]
    python_clients = [r for r in results if r["client"] in ("kafka-python", "confluent-kafka", "aiokafka")]
    assert all(r["status"] == PASS or r["reason"] == load(r["client"]).checks.unsupported.get(r["feature"])
               for r in python_clients)  # only the admin APIs a client lacks (log dirs, quotas) SKIP
    assert all(r["status"] == PASS for r in results if r["client"] == "kafka-python")


def test_reference_broker_stops_and_cleans_up(kafka_libs: Path) -> None:
    with reference.kafka_reference(kafka_libs) as k:
        assert k.version == reference.kafka_version(kafka_libs)
        assert k.rss_kib() > 0
        assert "Kafka Server started" in k.log_path.read_text(errors="replace")  # log4j2 logs to the file
        pid, work = k.pid, k.work_dir
        os.kill(pid, 0)  # alive
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not work.exists()
