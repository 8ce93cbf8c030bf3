"""The compatibility suite (compat/) against pykbroker, plus its report and allowlist logic in-process.

The suite runs each check in its own subprocess; here the three Python clients, franz-go and the Java
client 4.x (java-4) run every feature they have, which keeps the run around two minutes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from pykbroker.testing import RunningBroker, running_broker

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from compat import allowlist, report, runner  # noqa: E402
from compat.checks import load  # noqa: E402
from compat.features import CLIENTS, FEATURES, GROUP_FEATURES  # noqa: E402
from compat.result import FAIL, PASS, SKIP, XFAIL, Result  # noqa: E402

PYTHON_CLIENTS = "kafka-python/*,confluent-kafka/*,aiokafka/*"
GROUPS = "*/group-*"
CLOSING_LINE = re.compile(r"^\d+ passed, \d+ failed(, \d+ skipped)?(, \d+ xfailed)?$")


@pytest.fixture(scope="module")
def broker() -> Iterator[RunningBroker]:
    # The compaction row waits for the cleaner: a short backoff keeps the run near two minutes.
    with running_broker({"log.cleaner.backoff.ms": 500}) as b:
        yield b


def run_compat(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "compat", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def declared_skips(*clients: str) -> dict[tuple[str, str], str]:
    """(client, feature) -> the reason the client's check module declares it cannot run it (a gap in
    the client or its driver, the same on every broker)."""
    return {(c, f): reason for c in clients for f, reason in load(c).checks.unsupported.items()}


def run_all_pass(broker: RunningBroker, *selection: str, skipped: dict[tuple[str, str], str] | None = None,
                 timeout: float = 120) -> list[dict]:
    """Runs the selection; every check must PASS but those in `skipped`, SKIPped with that reason."""
    skipped = skipped or {}
    proc = run_compat(broker.bootstrap_servers, "--json", "-q", *selection, timeout=timeout)
    data = json.loads(proc.stdout)
    results = data["results"]
    not_passed = [f"{r['client']}/{r['feature']}: {r['status']} {r['reason']}" for r in results
                  if r["status"] != PASS
                  and not (r["status"] == SKIP and skipped.get((r["client"], r["feature"])) == r["reason"])]
    assert not not_passed, "\n".join(not_passed) + "\n" + proc.stderr[-3000:]
    assert proc.returncode == 0
    n_skipped = sum(r["status"] == SKIP for r in results)
    assert data["summary"] == {"passed": len(results) - n_skipped, "failed": 0, "skipped": n_skipped,
                               "xfailed": 0}
    assert data["bootstrap"] == broker.bootstrap_servers
    return results


def test_python_clients_pass_every_non_group_feature(broker: RunningBroker) -> None:
    # confluent-kafka and aiokafka lack some admin APIs (log dirs, quotas...): those SKIP, declared.
    results = run_all_pass(broker, "--only", PYTHON_CLIENTS, "--exclude", GROUPS,
                           skipped=declared_skips("kafka-python", "confluent-kafka", "aiokafka"))
    assert len(results) == 3 * (len(FEATURES) - len(GROUP_FEATURES))
    assert all(r["status"] == PASS for r in results if r["client"] == "kafka-python")


def test_python_clients_pass_the_group_features(broker: RunningBroker) -> None:
    # Kept apart from the test above: these were left out until the group coordinator landed (5eaec39).
    results = run_all_pass(broker, "--only", ",".join(f"{c}/group-*" for c in ("kafka-python", "confluent-kafka",
                                                                             "aiokafka")))
    assert len(results) == 3 * len(GROUP_FEATURES)


def require_client(client: str) -> None:
    """Builds the client's driver first (from an empty cache: minutes, more than a compat run allows).

    A failed build fails; a missing toolchain (go, java, mvn) skips on a developer's machine but fails in
    CI, where .ci/run's machine has them: the new client columns are never skipped there unseen.
    """
    module = load(client)
    problem = module.prepare(timeout_s=900)
    assert problem is None, f"{client}: {problem}"
    reason = module.available()
    if reason and not os.environ.get("CI"):
        pytest.skip(f"{client}: {reason}")
    assert reason is None, f"{client} unavailable in CI: {reason}"


@pytest.mark.timeout(900)  # from an empty cache, the Go build alone takes 1-2 minutes on 2 cores
def test_franz_go_passes_every_feature(broker: RunningBroker) -> None:
    require_client("franz-go")
    results = run_all_pass(broker, "--only", "franz-go/*", skipped=declared_skips("franz-go"))
    assert len(results) == len(FEATURES)


@pytest.mark.timeout(900)
def test_java_4_passes_every_feature_kafkacheck_has(broker: RunningBroker) -> None:
    require_client("java-4")
    unsupported = load("java-4").checks.unsupported
    assert set(unsupported) < set(FEATURES)
    results = run_all_pass(broker, "--only", "java-4/*", skipped=declared_skips("java-4"), timeout=400)
    assert len(results) == len(FEATURES)
    assert {r["client"] for r in results} == {"java-4"}


def test_text_report_ends_with_the_count_line(broker: RunningBroker) -> None:
    # java/headers is always a SKIP (KafkaCheck cannot send headers): no JVM is started for it.
    proc = run_compat(broker.bootstrap_servers, "--only", "kafka-python/metadata,java/headers")
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert lines[-1] == "1 passed, 0 failed, 1 skipped"
    assert CLOSING_LINE.match(lines[-1])
    header = next(line for line in lines if line.startswith("feature"))
    assert header.split() == ["feature", "kafka-python", "java"]
    assert any(line.split() == ["metadata", "PASS", "-"] for line in lines)


def test_unreachable_broker_and_bad_selection_are_usage_errors(tmp_path: Path) -> None:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    proc = run_compat(f"127.0.0.1:{port}", "--only", "kafka-python/metadata", timeout=30)
    assert proc.returncode == 2 and "cannot connect" in proc.stderr
    proc = run_compat("127.0.0.1:1", "--only", "no-such-client/*", timeout=30)
    assert proc.returncode == 2 and "no check matches" in proc.stderr


# ---- in-process: selection, allowlist, report

def test_selection_patterns() -> None:
    picked = runner.select(["aiokafka/*", "java/metadata"], ["*/group-*"])
    assert ("java", "metadata") in picked and ("aiokafka", "headers") in picked
    assert not [p for p in picked if p[1].startswith("group-")]
    assert {c for c, _ in picked} == {"aiokafka", "java"}
    assert runner.select(["headers"]) == [(c, "headers") for c in CLIENTS]
    assert {"franz-go", "java-4"} < set(CLIENTS)
    assert len(runner.select()) == len(CLIENTS) * len(FEATURES)


def test_allowlist_turns_listed_failures_into_xfail() -> None:
    entries = allowlist.parse("# pykbroker today\n*  group-*   # no group coordinator yet\n\n"
                              "kcat metadata\n")
    results = [Result("aiokafka", "group-commit-resume", FAIL, "FindCoordinator unsupported"),
               Result("kcat", "metadata", PASS),
               Result("kcat", "headers", FAIL, "boom"),
               Result("java", "group-list-describe", SKIP, "no command")]
    allowlist.apply(results, entries)
    assert [r.status for r in results] == [XFAIL, PASS, FAIL, SKIP]
    assert results[0].note == "allowlisted: no group coordinator yet"
    assert report.summary_line(results) == "1 passed, 1 failed, 1 skipped, 1 xfailed"
    for bad in ("kafka-python\n", "nosuchclient metadata\n", "kcat nosuchfeature\n"):
        with pytest.raises(allowlist.AllowlistError):
            allowlist.parse(bad)


def test_shipped_allowlists_parse() -> None:
    paths = sorted((REPO_ROOT / "compat").glob("allowlist*.txt"))
    assert len(paths) == 2
    for path in paths:
        allowlist.load(path)
    assert allowlist.load(REPO_ROOT / "compat" / "allowlist-tansu.txt")


def test_matrix_layout() -> None:
    results = [Result("kafka-python", "metadata", PASS), Result("kcat", "metadata", FAIL, "x"),
               Result("kcat", "headers", SKIP, "y")]
    text = report.text(results, {"bootstrap": "h:1", "date": "d", "duration_s": 1.0, "clients": {}})
    lines = text.splitlines()
    assert lines[-1] == "1 passed, 1 failed, 1 skipped"
    table = [line.split() for line in lines if line.startswith(("feature", "metadata", "headers"))]
    assert table == [["feature", "kafka-python", "kcat"], ["metadata", "PASS", "FAIL"], ["headers", "-", "SKIP"]]
    assert "FAIL  kcat/metadata: x" in text


def test_java_partitioner_matches_kafka_python_murmur2() -> None:
    from kafka.partitioner.default import murmur2

    from compat.checks.java import murmur2_partition
    for i in range(500):
        key = b"user-%d" % i + bytes(range(i % 7))
        assert murmur2_partition(key, 4) == (murmur2(key) & 0x7FFFFFFF) % 4
