"""The Kafka 4.4.0 Java client against pykbroker: the 4.x API versions served and the features reported.

KafkaCheck is compiled against kafka-clients 4.4.0 from Maven Central by
tests/tools/setup_java_client_4x.sh; a failing set-up fails these tests (only a missing JDK skips).
"""

from __future__ import annotations

import uuid

import pytest

from integration.clients.java import produce_then_consume
from pykbroker.handlers import HANDLERS, Handler
from pykbroker.handlers.features import FINALIZED, FINALIZED_EPOCH, SUPPORTED
from pykbroker.protocol.messages import API_KEYS
from pykbroker.testing import RunningBroker


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> set[tuple[str, int]]:
    """Every (API name, version) the broker answers during the test."""
    seen: set[tuple[str, int]] = set()
    names = {key: name for name, key in API_KEYS.items()}
    for key, h in list(HANDLERS.items()):
        async def recording(broker, ctx, req, fn=h.fn):  # type: ignore[no-untyped-def]
            seen.add((names[ctx.api_key], ctx.api_version))
            return await fn(broker, ctx, req)
        monkeypatch.setitem(HANDLERS, key, Handler(h.api_key, h.min_version, h.max_version, recording))
    return seen


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_java4x_sees_the_features_served(kafka_broker: RunningBroker, java4x) -> None:
    out = java4x(["admin", "--bootstrap", kafka_broker.bootstrap_servers, "describe-features"])
    assert out["supported"] == {name: [low, high] for name, (low, high) in SUPPORTED.items() if high > 0}
    assert out["finalized"] == {name: [level, level] for name, level in FINALIZED.items() if level > 0}
    assert out["finalized"]["group.version"] == [1, 1]  # KIP-848 consumer groups are served
    assert out["finalized"]["transaction.version"] == [2, 2]  # transactions v2 (KIP-890) are served
    assert out["finalized_epoch"] == FINALIZED_EPOCH


def test_java4x_idempotent_producer_then_consumer(kafka_broker: RunningBroker, java4x, served) -> None:
    """Produce v13 (topic ids), Fetch v18, Metadata v13, ListOffsets v11 and ApiVersions v5: what a 4.4
    client picks here."""
    produced, consumed = produce_then_consume(java4x, kafka_broker.bootstrap_servers, _topic("java4x"), 1000,
                                              produce_args=("--compression", "zstd"))
    for field in ("value_bytes", "partitions", "first_offset", "last_offset"):
        assert consumed[field] == produced[field], field
    assert {("PRODUCE", 13), ("FETCH", 18), ("METADATA", 13), ("LIST_OFFSETS", 11), ("API_VERSIONS", 5)} <= served, served


def test_java4x_kip848_consumer_group(kafka_broker: RunningBroker, java4x, served) -> None:
    _, consumed = produce_then_consume(java4x, kafka_broker.bootstrap_servers, _topic("java4x-848"), 200, 2,
                                       consume_args=("--group", "j4x", "--from-beginning",
                                                     "--prop", "group.protocol=consumer"))
    assert consumed["committed"] is True
    assert ("CONSUMER_GROUP_HEARTBEAT", 1) in served  # Kafka 4's version: client-chosen member ids
    assert {("OFFSET_COMMIT", 10), ("OFFSET_FETCH", 10)} <= served, served  # by topic id


def test_java4x_admin_describe_cluster(kafka_broker: RunningBroker, java4x, served) -> None:
    """DescribeCluster v2 (KIP-1073): the only broker is listed (and is not fenced)."""
    out = java4x(["admin", "--bootstrap", kafka_broker.bootstrap_servers, "describe-cluster"])
    broker = kafka_broker.broker
    assert broker is not None
    assert out["cluster_id"] == broker.cluster_id and [n["id"] for n in out["nodes"]] == [broker.node_id]
    assert ("DESCRIBE_CLUSTER", 2) in served


def test_java4x_transactions_commit_abort_and_fencing(kafka_broker: RunningBroker, java4x, served) -> None:
    bs = kafka_broker.bootstrap_servers
    topic = _topic("java4x-txn")
    java4x(["admin", "--bootstrap", bs, "create-topic", topic, "--partitions", "1"])
    r = java4x(["txn", "--bootstrap", bs, "--topic", topic, "--transactional-id", "java4x-txn",
                "--plan", "commit:2,abort:2,commit:1", "--fence"])
    assert (r["commits"], r["aborts"], r["fenced"]) == (2, 1, True)
    assert r["fenced_by"] == "ProducerFencedException"


def test_java4x_uses_transactions_v2(kafka_broker: RunningBroker, java4x, served) -> None:
    """With transaction.version 2 finalized the 4.4 client sends no AddPartitionsToTxn/AddOffsetsToTxn:
    Produce v12 adds the partition, EndTxn v5 bumps the epoch per transaction (as Kafka 4.4.0 does:
    the same plan there ends at epoch 3 too), and read_committed readers see the commits only."""
    bs = kafka_broker.bootstrap_servers
    broker = kafka_broker.broker
    assert broker is not None
    topic = _topic("java4x-tv2")
    java4x(["admin", "--bootstrap", bs, "create-topic", topic, "--partitions", "1"])
    adds, bumps = broker.txns.v2_partition_adds, broker.txns.v2_epoch_bumps
    r = java4x(["txn", "--bootstrap", bs, "--topic", topic, "--transactional-id", _topic("java4x-tv2-id"),
                "--plan", "commit:2,abort:2,commit:1"])
    assert (r["commits"], r["aborts"]) == (2, 1)
    assert (r["after_producer_id"], r["after_epoch"]) == (r["init_producer_id"], r["init_epoch"] + 3)
    assert broker.txns.v2_epoch_bumps - bumps == 3 and broker.txns.v2_partition_adds - adds == 3
    # Produce v12 or later (v13, topic ids, is served too since main's KIP-516 versions): the implicit add
    assert ("END_TXN", 5) in served and {v for name, v in served if name == "PRODUCE"} & {12, 13}
    assert not {name for name, _ in served} & {"ADD_PARTITIONS_TO_TXN", "ADD_OFFSETS_TO_TXN"}
    assert not {("END_TXN", v) for v in range(5)} & served
    # offsets: commit-0 0, commit-1 1, marker 2, abort-2 3, abort-3 4, marker 5, commit-4 6, marker 7
    committed = java4x(["consume", "--bootstrap", bs, "--topic", topic, "--count", "3",
                        "--prop", "isolation.level=read_committed"])
    assert committed["partitions"] == {"0": {"first": 0, "last": 6, "count": 3}}
    everything = java4x(["consume", "--bootstrap", bs, "--topic", topic, "--count", "5"])
    assert everything["partitions"] == {"0": {"first": 0, "last": 6, "count": 5}}
