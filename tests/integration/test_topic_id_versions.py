"""The Kafka 4.x versions that name topics by id (Produce v13, OffsetCommit v10, OffsetFetch v10), ListOffsets
v11 and ApiVersions v5, on the wire with raw requests: one suite run against pykbroker and against Apache
Kafka 4.4.0 (compat/reference.py), so every expectation is Kafka's own answer."""

from __future__ import annotations

import time
import uuid
from typing import Any, Callable, Iterator

import pytest

from compat import reference
from pykbroker.protocol.errors import ErrorCode
from pykbroker.protocol.primitives import ZERO_UUID
from pykbroker.protocol.records import Record, build_batch
from pykbroker.testing import running_broker
from pykbroker.wire_client import WireClient

PRODUCE, LIST_OFFSETS, METADATA, OFFSET_COMMIT, OFFSET_FETCH, FIND_COORDINATOR, API_VERSIONS, CREATE_TOPICS = (
    0, 2, 3, 8, 9, 10, 18, 19)
SOFTWARE = {"client_software_name": "t", "client_software_version": "1"}


@pytest.fixture(scope="module", params=["pykbroker", pytest.param("kafka", marks=pytest.mark.kafka_reference)])
def bootstrap(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "pykbroker":
        with running_broker(data_dir=tmp_path_factory.mktemp("pykbroker")) as broker:
            yield broker.bootstrap_servers
        return
    try:
        libs = reference.ensure_kafka()
    except reference.KafkaReferenceError as e:
        pytest.fail(f"cannot set up the Apache Kafka reference broker: {e}", pytrace=False)
    with reference.kafka_reference(libs) as kafka:
        yield kafka.bootstrap_servers


@pytest.fixture
def client(bootstrap: str) -> Iterator[WireClient]:
    c = WireClient(bootstrap)
    yield c
    c.close()


def retried(send: Callable[[], Any], error: Callable[[Any], int], timeout_s: float = 20) -> Any:
    """`send()` again while the answer is a retriable start-up error (coordinator loading, metadata not
    yet propagated on Kafka)."""
    retriable = {ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, ErrorCode.COORDINATOR_NOT_AVAILABLE,
                 ErrorCode.NOT_COORDINATOR, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.NOT_LEADER_OR_FOLLOWER,
                 ErrorCode.LEADER_NOT_AVAILABLE}
    deadline = time.monotonic() + timeout_s
    while True:
        r = send()
        if error(r) not in retriable or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def new_topic(client: WireClient, partitions: int = 2) -> tuple[str, uuid.UUID]:
    name = f"ids-{uuid.uuid4().hex[:8]}"
    r = client.request(CREATE_TOPICS, 7, {"topics": [{"name": name, "num_partitions": partitions,
                                                       "replication_factor": 1}], "timeout_ms": 10000})
    assert r.topics[0].error_code == 0, r
    return name, r.topics[0].topic_id


def produce_v13(client: WireClient, topic_id: uuid.UUID, index: int = 0, n: int = 1) -> Any:
    records = build_batch([Record(i, 0, None, b"v%d" % i, []) for i in range(n)], base_timestamp=1_700_000_000_000)
    return client.request(PRODUCE, 13, {"transactional_id": None, "acks": -1, "timeout_ms": 5000, "topic_data": [
        {"topic_id": topic_id, "partition_data": [{"index": index, "records": records}]}]})


def list_offset(client: WireClient, name: str, timestamp: int, version: int = 11) -> Any:
    r = client.request(LIST_OFFSETS, version, {"replica_id": -1, "isolation_level": 0, "timeout_ms": 5000, "topics": [
        {"name": name, "partitions": [{"partition_index": 0, "current_leader_epoch": -1, "timestamp": timestamp}]}]})
    return r.topics[0].partitions[0]


def test_produce_v13_addresses_topics_by_id(client: WireClient) -> None:
    name, topic_id = new_topic(client)
    r = retried(lambda: produce_v13(client, topic_id, n=3), lambda r: r.responses[0].partition_responses[0].error_code)
    assert r.responses[0].topic_id == topic_id and "name" not in r.responses[0]
    assert (r.responses[0].partition_responses[0].error_code, r.responses[0].partition_responses[0].base_offset) == (0, 0)
    assert list_offset(client, name, -1).offset == 3  # the records went to the topic the id names
    unknown = produce_v13(client, uuid.uuid4()).responses[0]
    assert unknown.partition_responses[0].error_code == ErrorCode.UNKNOWN_TOPIC_ID
    missing = produce_v13(client, topic_id, index=7).responses[0]
    assert missing.topic_id == topic_id
    assert missing.partition_responses[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_list_offsets_v11_earliest_pending_upload_without_remote_storage(client: WireClient) -> None:
    name, topic_id = new_topic(client)
    retried(lambda: produce_v13(client, topic_id, n=2), lambda r: r.responses[0].partition_responses[0].error_code)
    pending = list_offset(client, name, -6)
    assert (pending.error_code, pending.offset, pending.timestamp, pending.leader_epoch) == (0, -1, -1, -1)
    assert list_offset(client, name, -6, version=10).error_code == ErrorCode.UNSUPPORTED_VERSION
    assert list_offset(client, name, -3, version=6).error_code == ErrorCode.UNSUPPORTED_VERSION  # max timestamp: v7+
    assert list_offset(client, name, -2).offset == 0 and list_offset(client, name, -1).offset == 2


def commit_v10(client: WireClient, group: str, topics: list[tuple[uuid.UUID, int, int]]) -> Any:
    return client.request(OFFSET_COMMIT, 10, {
        "group_id": group, "generation_id_or_member_epoch": -1, "member_id": "", "group_instance_id": None,
        "topics": [{"topic_id": tid, "partitions": [{"partition_index": p, "committed_offset": off,
                                                     "committed_leader_epoch": -1, "committed_metadata": "m"}]}
                   for tid, p, off in topics]})


def fetch_offsets(client: WireClient, version: int, group: str, topics: list[dict] | None) -> Any:
    return client.request(OFFSET_FETCH, version, {"groups": [{"group_id": group, "member_id": None, "member_epoch": -1,
                                                              "topics": topics}], "require_stable": False}).groups[0]


def test_offset_commit_and_fetch_v10_by_topic_id(client: WireClient) -> None:
    name, topic_id = new_topic(client)
    group = f"g-{uuid.uuid4().hex[:8]}"
    bogus = uuid.uuid4()
    # Kafka creates __consumer_offsets on the first FindCoordinator, as a client's would.
    retried(lambda: client.request(FIND_COORDINATOR, 4, {"key_type": 0, "coordinator_keys": [group]}),
            lambda r: r.coordinators[0].error_code)
    r = retried(lambda: commit_v10(client, group, [(topic_id, 1, 42), (bogus, 0, 1)]),
                lambda r: min(p.error_code for t in r.topics for p in t.partitions))
    by_id = {t.topic_id: [p.error_code for p in t.partitions] for t in r.topics}
    assert by_id == {topic_id: [0], bogus: [ErrorCode.UNKNOWN_TOPIC_ID]}
    assert all("name" not in t for t in r.topics)

    g = fetch_offsets(client, 10, group, [{"topic_id": topic_id, "partition_indexes": [0, 1]},
                                          {"topic_id": bogus, "partition_indexes": [3]}])
    got = {(t.topic_id, p.partition_index): (p.committed_offset, p.metadata, p.error_code)
           for t in g.topics for p in t.partitions}
    assert got == {(topic_id, 0): (-1, "", 0), (topic_id, 1): (42, "m", 0), (bogus, 3): (-1, "", ErrorCode.UNKNOWN_TOPIC_ID)}

    every = fetch_offsets(client, 10, group, None)
    assert [(t.topic_id, [(p.partition_index, p.committed_offset) for p in t.partitions]) for t in every.topics] == [
        (topic_id, [(1, 42)])]
    # Stored by name: a v9 client of the same group sees the commit made by id.
    old = fetch_offsets(client, 9, group, [{"name": name, "partition_indexes": [1]}])
    assert [(t.name, t.partitions[0].committed_offset) for t in old.topics] == [(name, 42)]


def test_api_versions_v5_checks_the_clients_cluster_and_node(client: WireClient) -> None:
    meta = client.request(METADATA, 12, {"topics": [], "allow_auto_topic_creation": False,
                                         "include_topic_authorized_operations": False})
    cluster_id, node_id = meta.cluster_id, meta.brokers[0].node_id

    def versions(cluster: str | None, node: int, software: dict = SOFTWARE) -> Any:
        return client.request(API_VERSIONS, 5, {**software, "cluster_id": cluster, "node_id": node})

    ok = versions(cluster_id, node_id)
    assert ok.error_code == 0 and {k.api_key for k in ok.api_keys} >= {PRODUCE, API_VERSIONS}
    assert versions(None, -1).error_code == 0  # a client that does not know the cluster yet
    for cluster, node in ((cluster_id, node_id + 1), ("AAAAAAAAAAAAAAAAAAAAAA", node_id)):
        r = versions(cluster, node)
        assert (r.error_code, r.api_keys) == (ErrorCode.REBOOTSTRAP_REQUIRED, [])
    assert versions(cluster_id, -1).error_code == ErrorCode.INVALID_REQUEST  # both or neither
    assert versions(None, node_id).error_code == ErrorCode.INVALID_REQUEST
    bad_name = {"client_software_name": "-bad", "client_software_version": "1"}
    assert versions(None, -1, bad_name).error_code == ErrorCode.INVALID_REQUEST


def test_metadata_by_topic_id_ignores_the_name_beside_it(client: WireClient) -> None:
    """The Java 4.4 consumer, assigned a topic by id (KIP-848), asks Metadata for {name: "", topic_id}."""
    name, topic_id = new_topic(client)
    bogus = uuid.uuid4()

    def by_ids(*ids: uuid.UUID) -> Any:
        return client.request(METADATA, 12, {"topics": [{"topic_id": i, "name": ""} for i in ids],
                                             "allow_auto_topic_creation": False,
                                             "include_topic_authorized_operations": False}).topics
    found = retried(lambda: by_ids(topic_id), lambda topics: topics[0].error_code)
    assert [(t.name, t.topic_id, t.error_code, len(t.partitions)) for t in found] == [(name, topic_id, 0, 2)]
    unknown = by_ids(bogus)
    assert [(t.name, t.topic_id, t.error_code) for t in unknown] == [(None, bogus, ErrorCode.UNKNOWN_TOPIC_ID)]


def test_zero_topic_id_is_unknown(client: WireClient) -> None:
    assert produce_v13(client, ZERO_UUID).responses[0].partition_responses[0].error_code == ErrorCode.UNKNOWN_TOPIC_ID
