"""Transactions v2 (KIP-890 part 2) on the wire, request by request as a Kafka 4 producer sends them:
Produce v12 adds the partition, TxnOffsetCommit v5 adds the group, EndTxn v5 bumps the epoch and
answers with it; the old epoch is fenced afterwards. (The Java 4.4 client runs the same flow in
tests/integration/clients/test_java_4x.py.)"""

from __future__ import annotations

from typing import Iterator

import pytest

from pykbroker.protocol.errors import ErrorCode
from pykbroker.protocol.messages import API_KEYS as K
from pykbroker.protocol.primitives import Msg
from pykbroker.protocol.records import Record, build_batch
from pykbroker.testing import RunningBroker
from pykbroker.wire_client import WireClient


@pytest.fixture
def client(kafka_broker: RunningBroker, topic_name: str) -> Iterator[WireClient]:
    c = WireClient(kafka_broker.bootstrap_servers)
    r = c.request(K["CREATE_TOPICS"], 5, {"topics": [{"name": topic_name, "num_partitions": 1, "replication_factor": 1,
                                                      "assignments": [], "configs": []}], "timeout_ms": 5000})
    assert r.topics[0].error_code == 0
    yield c
    c.close()


def init(c: WireClient, txn_id: str) -> Msg:
    r = c.request(K["INIT_PRODUCER_ID"], 5, {"transactional_id": txn_id, "transaction_timeout_ms": 60_000,
                                              "producer_id": -1, "producer_epoch": -1})
    assert r.error_code == 0
    return r


def produce(c: WireClient, txn_id: str, topic: str, pid: int, epoch: int, seq: int, version: int = 12) -> Msg:
    batch = build_batch([Record(0, 0, None, b"v%d" % seq, [])], producer_id=pid, producer_epoch=epoch,
                        base_sequence=seq, is_transactional=True)
    r = c.request(K["PRODUCE"], version, {"transactional_id": txn_id, "acks": -1, "timeout_ms": 5000, "topic_data": [
        {"name": topic, "partition_data": [{"index": 0, "records": batch}]}]})
    return r.responses[0].partition_responses[0]


def end(c: WireClient, txn_id: str, pid: int, epoch: int, commit: bool, version: int = 5) -> Msg:
    return c.request(K["END_TXN"], version, {"transactional_id": txn_id, "producer_id": pid, "producer_epoch": epoch,
                                             "committed": commit})


def describe(c: WireClient, txn_id: str) -> Msg:
    return c.request(K["DESCRIBE_TRANSACTIONS"], 0, {"transactional_ids": [txn_id]}).transaction_states[0]


def test_produce_v12_adds_the_partition_and_end_txn_v5_bumps_the_epoch(client: WireClient, topic_name: str,
                                                                      kafka_broker: RunningBroker) -> None:
    p = init(client, "v2")
    pid, epoch = p.producer_id, p.producer_epoch
    assert produce(client, "v2", topic_name, pid, epoch, 0).error_code == 0  # no AddPartitionsToTxn before
    d = describe(client, "v2")
    assert (d.transaction_state, [(t.topic, list(t.partitions)) for t in d.topics]) == ("Ongoing", [(topic_name, [0])])
    r = end(client, "v2", pid, epoch, commit=True)
    assert (r.error_code, r.producer_id, r.producer_epoch) == (0, pid, epoch + 1)
    assert describe(client, "v2").producer_epoch == epoch + 1
    # the old epoch is fenced: a zombie's produce is refused as Kafka refuses it
    assert produce(client, "v2", topic_name, pid, epoch, 1).error_code == ErrorCode.INVALID_PRODUCER_EPOCH
    # the next transaction, at the new epoch from sequence 0, then a retried EndTxn of it
    assert produce(client, "v2", topic_name, pid, epoch + 1, 0).error_code == 0
    r = end(client, "v2", pid, epoch + 1, commit=False)
    assert (r.error_code, r.producer_epoch) == (0, epoch + 2)
    retry = end(client, "v2", pid, epoch + 1, commit=False)
    assert (retry.error_code, retry.producer_id, retry.producer_epoch) == (0, pid, epoch + 2)
    # the partition: committed record, COMMIT marker, aborted record, ABORT marker at the bumped epochs
    producers = client.request(K["DESCRIBE_PRODUCERS"], 0, {"topics": [{"name": topic_name,
                                                                        "partition_indexes": [0]}]})
    [active] = producers.topics[0].partitions[0].active_producers
    assert (active.producer_id, active.producer_epoch, active.current_txn_start_offset) == (pid, epoch + 2, -1)
    # the broker's transaction log keeps the v2 state, replayed as the client version 2
    txn = kafka_broker.broker.txns.txns["v2"]
    assert txn.client_version == 2


def test_produce_below_v12_still_needs_add_partitions(client: WireClient, topic_name: str) -> None:
    p = init(client, "v1")
    # Kafka 4.4.0 answers these two so (v11 clients know KIP-890's TRANSACTION_ABORTABLE)
    assert produce(client, "v1", topic_name, p.producer_id, p.producer_epoch, 0, version=11).error_code \
        == ErrorCode.TRANSACTION_ABORTABLE
    assert produce(client, "v1", topic_name, p.producer_id, p.producer_epoch, 0, version=10).error_code \
        == ErrorCode.INVALID_TXN_STATE
    r = end(client, "v1", p.producer_id, p.producer_epoch, commit=True, version=4)
    assert r.error_code == ErrorCode.INVALID_TXN_STATE  # nothing open: v1 has no empty commit either


def test_txn_offset_commit_v5_adds_the_offsets_partition(client: WireClient, topic_name: str,
                                                         kafka_broker: RunningBroker) -> None:
    p = init(client, "v2-offsets")
    pid, epoch = p.producer_id, p.producer_epoch

    def commit_offsets(version: int, producer_epoch: int) -> int:
        r = client.request(K["TXN_OFFSET_COMMIT"], version, {
            "transactional_id": "v2-offsets", "group_id": "g-v2", "producer_id": pid, "producer_epoch": producer_epoch,
            "generation_id_or_member_epoch": -1, "member_id": "", "group_instance_id": None,
            "topics": [{"name": topic_name, "partitions": [{"partition_index": 0, "committed_offset": 42,
                                                            "committed_leader_epoch": -1, "committed_metadata": ""}]}]})
        return r.topics[0].partitions[0].error_code

    assert commit_offsets(4, epoch) == ErrorCode.TRANSACTION_ABORTABLE  # v4 verifies only, as Kafka 4.4.0
    assert commit_offsets(5, epoch) == 0
    offsets_partition = kafka_broker.broker.groups.partition_for("g-v2")
    d = describe(client, "v2-offsets")
    assert [(t.topic, list(t.partitions)) for t in d.topics] == [("__consumer_offsets", [offsets_partition])]
    assert commit_offsets(5, epoch + 1) == ErrorCode.INVALID_PRODUCER_EPOCH
    r = end(client, "v2-offsets", pid, epoch, commit=True)
    assert (r.error_code, r.producer_epoch) == (0, epoch + 1)
    fetched = client.request(K["OFFSET_FETCH"], 8, {"groups": [{"group_id": "g-v2", "topics": None}],
                                                      "require_stable": True})
    assert fetched.groups[0].topics[0].partitions[0].committed_offset == 42


def test_list_transactions_v2_filters_by_pattern(client: WireClient) -> None:
    for txn_id in ("app-1", "app-2", "other"):
        init(client, txn_id)

    def listed(pattern: str | None) -> Msg:
        return client.request(K["LIST_TRANSACTIONS"], 2, {"state_filters": [], "producer_id_filters": [],
                                                           "duration_filter": -1, "transactional_id_pattern": pattern})

    assert sorted(t.transactional_id for t in listed("app-.*").transaction_states) == ["app-1", "app-2"]
    assert [t.transactional_id for t in listed("app").transaction_states] == []  # the whole id must match
    assert len(listed(None).transaction_states) >= 3
    assert listed("app-(").error_code == ErrorCode.INVALID_REGULAR_EXPRESSION


def test_txn_offset_commit_v6_names_topics_by_id(client: WireClient, topic_name: str,
                                                 kafka_broker: RunningBroker) -> None:
    """v6 (KIP-1319): topic ids, UNKNOWN_TOPIC_ID, and GROUP_ID_NOT_FOUND where v5 says ILLEGAL_GENERATION."""
    import uuid

    p = init(client, "v6-offsets")
    topic_id = kafka_broker.broker.topic(topic_name).topic_id

    def commit_offsets(version: int, group: str, generation: int, topic: dict) -> Msg:
        return client.request(K["TXN_OFFSET_COMMIT"], version, {
            "transactional_id": "v6-offsets", "group_id": group, "producer_id": p.producer_id,
            "producer_epoch": p.producer_epoch, "generation_id_or_member_epoch": generation, "member_id": "",
            "group_instance_id": None, "topics": [{**topic, "partitions": [
                {"partition_index": 0, "committed_offset": 7, "committed_leader_epoch": -1,
                 "committed_metadata": ""}]}]})

    ok = commit_offsets(6, "g-v6", -1, {"topic_id": topic_id})
    assert ok.topics[0].topic_id == topic_id and ok.topics[0].partitions[0].error_code == 0
    unknown = commit_offsets(6, "g-v6", -1, {"topic_id": uuid.uuid4()})
    assert unknown.topics[0].partitions[0].error_code == ErrorCode.UNKNOWN_TOPIC_ID
    missing = commit_offsets(6, "g-v6-missing", 3, {"topic_id": topic_id})
    assert missing.topics[0].partitions[0].error_code == ErrorCode.GROUP_ID_NOT_FOUND
    older = commit_offsets(5, "g-v6-missing", 3, {"name": topic_name})
    assert older.topics[0].partitions[0].error_code == ErrorCode.ILLEGAL_GENERATION
    r = end(client, "v6-offsets", p.producer_id, p.producer_epoch, commit=True)
    assert r.error_code == 0
    fetched = client.request(K["OFFSET_FETCH"], 8, {"groups": [{"group_id": "g-v6", "topics": None}],
                                                      "require_stable": True})
    assert fetched.groups[0].topics[0].partitions[0].committed_offset == 7


def test_the_bumped_epoch_survives_a_restart(tmp_path, topic_name: str) -> None:
    """The v1 transaction log value replays the v2 state: after a restart the client's new epoch is
    the current one, the old one is still fenced, and the open v2 transaction is still open."""
    from test_transactions import describe_transaction

    from pykbroker.testing import running_broker

    data = tmp_path / "data"
    with running_broker(data_dir=data) as first:
        c = WireClient(first.bootstrap_servers)
        c.request(K["CREATE_TOPICS"], 5, {"topics": [{"name": topic_name, "num_partitions": 1, "replication_factor": 1,
                                                      "assignments": [], "configs": []}], "timeout_ms": 5000})
        p = init(c, "v2-restart")
        pid, epoch = p.producer_id, p.producer_epoch
        assert produce(c, "v2-restart", topic_name, pid, epoch, 0).error_code == 0
        assert end(c, "v2-restart", pid, epoch, commit=True).producer_epoch == epoch + 1
        assert produce(c, "v2-restart", topic_name, pid, epoch + 1, 0).error_code == 0  # left open
        c.close()
    with running_broker(data_dir=data) as second:
        state = describe_transaction(second.bootstrap_servers, "v2-restart")
        assert (state.transaction_state, state.producer_epoch) == ("Ongoing", epoch + 1)
        assert second.broker.txns.txns["v2-restart"].client_version == 2
        c = WireClient(second.bootstrap_servers)
        try:
            assert produce(c, "v2-restart", topic_name, pid, epoch, 1).error_code == ErrorCode.INVALID_PRODUCER_EPOCH
            assert produce(c, "v2-restart", topic_name, pid, epoch + 1, 1).error_code == 0
            r = end(c, "v2-restart", pid, epoch + 1, commit=True)
            assert (r.error_code, r.producer_id, r.producer_epoch) == (0, pid, epoch + 2)
        finally:
            c.close()


def test_a_brokers_add_partitions_is_a_v2_add(client: WireClient, topic_name: str,
                                              kafka_broker: RunningBroker) -> None:
    """AddPartitionsToTxn v4+ (from a broker, not verify-only) counts as transactions v2, as Kafka's
    TransactionVersion.transactionVersionForAddPartitionsToTxn; v3 (a client's) as v1."""
    coordinator = kafka_broker.broker.txns
    for version, txn_id in ((3, "v1-add"), (4, "v2-add")):
        p = init(client, txn_id)
        if version == 3:
            r = client.request(K["ADD_PARTITIONS_TO_TXN"], 3, {
                "v3_and_below_transactional_id": txn_id, "v3_and_below_producer_id": p.producer_id,
                "v3_and_below_producer_epoch": p.producer_epoch,
                "v3_and_below_topics": [{"name": topic_name, "partitions": [0]}]})
            assert r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code == 0
        else:
            r = client.request(K["ADD_PARTITIONS_TO_TXN"], 4, {"transactions": [{
                "transactional_id": txn_id, "producer_id": p.producer_id, "producer_epoch": p.producer_epoch,
                "verify_only": False, "topics": [{"name": topic_name, "partitions": [0]}]}]})
            assert r.results_by_transaction[0].topic_results[0].results_by_partition[0].partition_error_code == 0
        assert coordinator.txns[txn_id].client_version == (2 if version == 4 else 0)
