"""ApiVersions features and the 4.x versions served, seen on the wire with raw requests."""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest

from pykbroker.handlers import HANDLERS
from pykbroker.handlers.features import FINALIZED, FINALIZED_EPOCH, SUPPORTED
from pykbroker.protocol.errors import ErrorCode
from pykbroker.protocol.messages import API_KEYS
from pykbroker.testing import RunningBroker
from pykbroker.wire_client import WireClient

K = API_KEYS
SOFTWARE = {"client_software_name": "t", "client_software_version": "1"}


@pytest.fixture
def client(kafka_broker: RunningBroker):
    c = WireClient(kafka_broker.bootstrap_servers)
    yield c
    c.close()


def loaded(send: Callable[[], Any], error: Callable[[Any], int]) -> Any:
    """`send()` again while the group coordinator is still loading its partition (just after start)."""
    deadline = time.monotonic() + 15
    while True:
        r = send()
        if error(r) != ErrorCode.COORDINATOR_LOAD_IN_PROGRESS or time.monotonic() > deadline:
            return r
        time.sleep(0.05)


def create_topic(client: WireClient, name: str) -> None:
    r = client.request(K["CREATE_TOPICS"], 7, {"topics": [{"name": name, "num_partitions": 2,
                                                           "replication_factor": 1}], "timeout_ms": 5000})
    assert r.topics[0].error_code == 0


def features(r) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    return ({f.name: (f.min_version, f.max_version) for f in r.supported_features},
            {f.name: (f.min_version_level, f.max_version_level) for f in r.finalized_features})


def test_api_versions_v4_reports_every_feature_above_level_0(client: WireClient) -> None:
    r = client.request(K["API_VERSIONS"], 4, SOFTWARE)
    supported, finalized = features(r)
    assert supported == {"metadata.version": SUPPORTED["metadata.version"], "group.version": (0, 1),
                         "transaction.version": (0, 2)}  # what Kafka 4.4.0 reports for these three
    assert finalized == {"metadata.version": (FINALIZED["metadata.version"],) * 2, "group.version": (1, 1),
                         "transaction.version": (2, 2)}
    assert r.finalized_features_epoch == FINALIZED_EPOCH >= 0
    assert {k.api_key: (k.min_version, k.max_version) for k in r.api_keys} == {
        h.api_key: (h.min_version, h.max_version) for h in HANDLERS.values()}


def test_api_versions_v3_omits_features_whose_minimum_is_0(client: WireClient) -> None:
    """KAFKA-17011: clients before ApiVersions v4 reject a supported minimum of 0, so Kafka leaves those out."""
    supported, finalized = features(client.request(K["API_VERSIONS"], 3, SOFTWARE))
    assert supported == {"metadata.version": SUPPORTED["metadata.version"]}
    assert finalized["group.version"] == (1, 1) and finalized["transaction.version"] == (2, 2)


def test_metadata_v13_has_a_top_level_error_code(client: WireClient) -> None:
    r = client.request(K["METADATA"], 13, {"topics": None, "allow_auto_topic_creation": False})
    assert r.error_code == 0 and r.brokers[0].node_id == r.controller_id


def test_describe_cluster_v2_lists_the_broker_unfenced(client: WireClient, kafka_broker: RunningBroker) -> None:
    r = client.request(K["DESCRIBE_CLUSTER"], 2, {"include_cluster_authorized_operations": False,
                                                  "endpoint_type": 1, "include_fenced_brokers": True})
    assert r.error_code == 0 and [(b.broker_id, b.is_fenced) for b in r.brokers] == [(r.controller_id, False)]


def test_delete_groups_v3_result_has_a_null_message(client: WireClient) -> None:
    r = loaded(lambda: client.request(K["DELETE_GROUPS"], 3, {"groups_names": ["nope"]}),
               lambda r: r.results[0].error_code)
    assert r.results[0].group_id == "nope" and r.results[0].error_code == ErrorCode.GROUP_ID_NOT_FOUND
    assert r.results[0].error_message is None


def test_consumer_group_describe_v1_reports_consumer_members(client: WireClient) -> None:
    create_topic(client, "cgd")
    joined = loaded(lambda: client.request(K["CONSUMER_GROUP_HEARTBEAT"], 0, {
        "group_id": "g1", "member_id": "", "member_epoch": 0, "rebalance_timeout_ms": 30000,
        "subscribed_topic_names": ["cgd"], "topic_partitions": []}), lambda r: r.error_code)
    assert joined.error_code == 0
    v1 = client.request(K["CONSUMER_GROUP_DESCRIBE"], 1, {"group_ids": ["g1"]})
    assert [(m.member_id, m.member_type) for m in v1.groups[0].members] == [(joined.member_id, 1)]
    v0 = client.request(K["CONSUMER_GROUP_DESCRIBE"], 0, {"group_ids": ["g1"]})
    assert "member_type" not in v0.groups[0].members[0]


@pytest.mark.parametrize("version", [5, 6])
def test_describe_groups_v6_says_an_unknown_group_is_not_found(client: WireClient, version: int) -> None:
    group = loaded(lambda: client.request(K["DESCRIBE_GROUPS"], version, {"groups": ["nobody"]}).groups[0],
                   lambda g: g.error_code)
    assert (group.group_id, group.group_state) == ("nobody", "Dead")
    if version >= 6:
        assert (group.error_code, group.error_message) == (ErrorCode.GROUP_ID_NOT_FOUND, "Group nobody not found.")
    else:
        assert group.error_code == 0 and "error_message" not in group


def test_describe_groups_v6_describes_a_known_group(client: WireClient) -> None:
    create_topic(client, "kt")
    committed = loaded(lambda: client.request(K["OFFSET_COMMIT"], 8, {
        "group_id": "known", "generation_id_or_member_epoch": -1, "member_id": "", "group_instance_id": None,
        "topics": [{"name": "kt", "partitions": [{"partition_index": 0, "committed_offset": 0}]}]}),
        lambda r: r.topics[0].partitions[0].error_code)
    assert committed.topics[0].partitions[0].error_code == 0
    group = client.request(K["DESCRIBE_GROUPS"], 6, {"groups": ["known"]}).groups[0]
    assert (group.error_code, group.error_message) == (0, None)
