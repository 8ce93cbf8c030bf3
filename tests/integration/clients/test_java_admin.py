"""The Java admin client (kafka-clients 3.9.1 and 4.4.0) on the admin APIs of issue 12, through
KafkaCheck's AdminSurface subcommands. The facts asserted are the ones Apache Kafka 4.4.0 itself
gives for the same subcommands (compat/FINDINGS.md, admin rows)."""

from __future__ import annotations

import functools
import subprocess
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest

from integration.clients.java import ensure_java_client, java_available, run_java
from pykbroker.testing import RunningBroker

SETUP_4X = Path(__file__).resolve().parents[2] / "tools" / "setup_java_client_4x.sh"


@pytest.fixture(scope="module", params=["3.9.1", "4.4.0"])
def java_admin(request: pytest.FixtureRequest) -> Callable[..., dict[str, Any]]:
    reason = java_available()
    if reason:
        pytest.skip(reason)
    if request.param == "3.9.1":
        ensure_java_client()
        return run_java
    done = subprocess.run([str(SETUP_4X)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"{SETUP_4X.name} failed (exit {done.returncode}):\n{done.stderr[-3000:]}", pytrace=False)
    return functools.partial(run_java, classpath=done.stdout.strip().splitlines()[-1])


def _admin(java_admin, broker: RunningBroker, *args: str) -> dict[str, Any]:
    return java_admin(["admin", "--bootstrap", broker.bootstrap_servers, *args])


def _topic(java_admin, broker: RunningBroker) -> str:
    topic = f"java-admin-{uuid.uuid4().hex[:8]}"
    _admin(java_admin, broker, "create-topic", topic)
    return topic


def test_client_quotas(kafka_broker: RunningBroker, java_admin) -> None:
    out = _admin(java_admin, kafka_broker, "client-quotas", "--client-id", "java-q", "--rate", "2048")
    assert out["invalid_key"] == "InvalidRequestException"
    assert out["described"] == {"consumer_byte_rate": 2048.0, "producer_byte_rate": 2048.0}
    assert out["after_removal"] == 0
    assert kafka_broker.broker.client_quotas.store.entries == {}


def test_log_dirs(kafka_broker: RunningBroker, java_admin) -> None:
    out = _admin(java_admin, kafka_broker, "log-dirs", _topic(java_admin, kafka_broker))
    assert (out["dirs"], out["has_partition"], out["total_bytes_known"]) == (1, True, True)
    assert (out["move_to_own_dir"], out["move_to_unknown_dir"]) == ("ok", "LogDirNotFoundException")


def test_create_partitions_with_assignments(kafka_broker: RunningBroker, java_admin) -> None:
    topic = _topic(java_admin, kafka_broker)
    out = _admin(java_admin, kafka_broker, "create-partitions", topic, "--total", "3")
    assert (out["assigned"], out["unknown_broker"]) == ("ok", "InvalidReplicaAssignmentException")
    assert kafka_broker.broker.topic(topic).partitions == 3  # type: ignore[union-attr]


def test_elections_and_reassignments(kafka_broker: RunningBroker, java_admin) -> None:
    out = _admin(java_admin, kafka_broker, "replicas", _topic(java_admin, kafka_broker))
    assert out["election"] == "ElectionNotNeededException"
    assert (out["reassignments_in_progress"], out["reassign_to_own_node"]) == (0, "ok")


def test_describe_configs_with_documentation(kafka_broker: RunningBroker, java_admin) -> None:
    out = _admin(java_admin, kafka_broker, "describe-configs", _topic(java_admin, kafka_broker))
    assert {k: out["retention_ms"][k] for k in ("value", "source", "type", "documented")} == {
        "value": "604800000", "source": "DEFAULT_CONFIG", "type": "LONG", "documented": True}
    assert out["cleanup_policy"] == {"value": "delete", "source": "DEFAULT_CONFIG", "type": "LIST",
                                     "documented": True, "synonyms": 1}
    assert (out["num_partitions"]["type"], out["num_partitions"]["documented"]) == ("INT", True)
    assert out["topic_configs_without_documentation"] == 0
