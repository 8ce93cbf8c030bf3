"""Server behaviour seen on the wire: limits, errors, ordering, acks=0, ApiVersions fallback."""

from __future__ import annotations

import struct
import time

import pytest

from pykbroker.protocol.errors import ErrorCode
from pykbroker.protocol.primitives import ZERO_UUID
from pykbroker.protocol.records import Record, build_batch
from pykbroker.testing import RunningBroker, running_broker
from pykbroker.wire_client import WireClient

PRODUCE, FETCH, LIST_OFFSETS, METADATA, API_VERSIONS, CREATE_TOPICS = 0, 1, 2, 3, 18, 19


def create_topic(client: WireClient, name: str, partitions: int = 1) -> None:
    r = client.request(CREATE_TOPICS, 7, {"topics": [{"name": name, "num_partitions": partitions,
                                                       "replication_factor": 1}], "timeout_ms": 5000})
    assert r.topics[0].error_code == 0, r


def produce_body(topic: str, records: bytes, acks: int = 1) -> dict:
    return {"acks": acks, "timeout_ms": 5000, "topic_data": [
        {"name": topic, "partition_data": [{"index": 0, "records": records}]}]}


def batch(n: int, start: int = 0, **kw: object) -> bytes:
    return build_batch([Record(i, 0, None, b"v%d" % (start + i), []) for i in range(n)],
                       base_timestamp=1_700_000_000_000, **kw)


def stored(batch_bytes: bytes, leader_epoch: int = 0) -> bytes:
    """A batch as the leader stores it: its partitionLeaderEpoch stamped, as Kafka does."""
    out = bytearray(batch_bytes)
    struct.pack_into(">i", out, 12, leader_epoch)
    return bytes(out)


@pytest.fixture
def client(kafka_broker: RunningBroker):
    c = WireClient(kafka_broker.bootstrap_servers)
    yield c
    c.close()


def test_api_versions_lists_only_served_apis(client: WireClient) -> None:
    r = client.request(API_VERSIONS, 3, {"client_software_name": "t", "client_software_version": "1"})
    keys = {k.api_key: (k.min_version, k.max_version) for k in r.api_keys}
    assert r.error_code == 0
    assert keys[PRODUCE] == (0, 13) and keys[FETCH] == (0, 18) and keys[METADATA] == (0, 13)
    assert 4 not in keys  # LeaderAndIsr: a controller API, never served to clients


def test_api_versions_of_unknown_version_gets_a_v0_answer(client: WireClient) -> None:
    # Header v2 as for ApiVersions v3+ (client id, then an empty tagged-field section): Apache Kafka
    # closes the connection when that last byte is missing.
    client.send_raw(struct.pack(">ihhihb", 11, API_VERSIONS, 99, 7, -1, 0))
    correlation_id, r = client.receive(API_VERSIONS, 0)  # response header v0, body v0
    assert correlation_id == 7 and r.error_code == ErrorCode.UNSUPPORTED_VERSION
    # Apache Kafka 4.4 lists only ApiVersions itself in this answer (the client retries with it).
    assert [(k.api_key, k.min_version) for k in r.api_keys] == [(API_VERSIONS, 0)]
    assert r.api_keys[0].max_version >= 3


def test_unsupported_api_closes_only_that_connection(kafka_broker: RunningBroker, client: WireClient) -> None:
    client.send(4, 7, {})  # LeaderAndIsr: well-formed but not served
    assert client.is_closed_by_peer()
    other = WireClient(kafka_broker.bootstrap_servers)
    assert other.request(METADATA, 12, {"topics": []}).brokers[0].node_id == 1
    other.close()


def test_oversized_frame_is_refused_before_reading_it() -> None:
    with running_broker({"socket.request.max.bytes": 1000}) as broker:
        c = WireClient(broker.bootstrap_servers)
        c.send_raw(struct.pack(">i", 50_000_000) + b"\x00" * 100)  # body never sent
        assert c.is_closed_by_peer()
        ok = WireClient(broker.bootstrap_servers)
        assert ok.request(METADATA, 1, {"topics": []}).brokers
        ok.close()


def test_garbage_closes_the_connection_and_the_broker_survives(kafka_broker: RunningBroker, client: WireClient) -> None:
    client.send_raw(struct.pack(">i", 12) + struct.pack(">hhi", METADATA, 9, 1) + b"\xff\xff\xff\xff")
    assert client.is_closed_by_peer()
    ok = WireClient(kafka_broker.bootstrap_servers)
    assert ok.request(METADATA, 12, {"topics": []}).cluster_id
    ok.close()


def test_pipelined_requests_are_answered_in_order(client: WireClient) -> None:
    create_topic(client, "pipe")
    sent = [client.send(PRODUCE, 9, produce_body("pipe", batch(3, i * 3))) for i in range(20)]
    answers = [client.receive(PRODUCE, 9) for _ in sent]
    assert [cid for cid, _ in answers] == sent
    assert [r.responses[0].partition_responses[0].base_offset for _, r in answers] == list(range(0, 60, 3))


def test_acks_zero_gets_no_response(client: WireClient) -> None:
    create_topic(client, "fire")
    client.send(PRODUCE, 9, produce_body("fire", batch(5), acks=0))
    r = client.request(LIST_OFFSETS, 7, {"replica_id": -1, "isolation_level": 0, "topics": [
        {"name": "fire", "partitions": [{"partition_index": 0, "timestamp": -1}]}]})
    assert r.topics[0].partitions[0].offset == 5  # the next answer is the ListOffsets one


def test_bad_batches_get_kafka_error_codes_and_nothing_stored_is_lost(client: WireClient) -> None:
    create_topic(client, "bad")
    good = client.request(PRODUCE, 9, produce_body("bad", batch(4)))
    assert good.responses[0].partition_responses[0].error_code == 0
    corrupt = bytearray(batch(2))
    corrupt[-1] ^= 0xFF
    r = client.request(PRODUCE, 9, produce_body("bad", bytes(corrupt)))
    assert r.responses[0].partition_responses[0].error_code == ErrorCode.CORRUPT_MESSAGE
    r = client.request(PRODUCE, 9, produce_body("bad", batch(2)[:30]))
    assert r.responses[0].partition_responses[0].error_code in (ErrorCode.CORRUPT_MESSAGE, ErrorCode.INVALID_RECORD)
    r = client.request(PRODUCE, 9, produce_body("nope", batch(2)))
    assert r.responses[0].partition_responses[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    r = client.request(PRODUCE, 9, produce_body("bad", batch(2), acks=5))
    assert r.responses[0].partition_responses[0].error_code == ErrorCode.INVALID_REQUIRED_ACKS
    big = build_batch([Record(0, 0, None, b"x" * 1_100_000, [])])
    r = client.request(PRODUCE, 9, produce_body("bad", big))
    assert r.responses[0].partition_responses[0].error_code == ErrorCode.MESSAGE_TOO_LARGE
    fetched = client.request(FETCH, 12, {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
                                         "isolation_level": 0, "topics": [{"topic": "bad", "partitions": [
                                             {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}]})
    part = fetched.responses[0].partitions[0]
    assert part.high_watermark == 4 and bytes(part.records) == stored(batch(4))


def test_invalid_topic_name_in_metadata(client: WireClient) -> None:
    r = client.request(METADATA, 12, {"topics": [{"name": "bad/name"}], "allow_auto_topic_creation": True})
    assert r.topics[0].error_code == ErrorCode.INVALID_TOPIC_EXCEPTION


def test_fetch_out_of_range_and_in_the_middle_of_a_batch(client: WireClient) -> None:
    create_topic(client, "mid")
    client.request(PRODUCE, 9, produce_body("mid", batch(10)))

    def fetch(offset: int) -> object:
        return client.request(FETCH, 11, {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
                                          "isolation_level": 0, "session_id": 0, "session_epoch": -1, "topics": [
                                              {"topic": "mid", "partitions": [{"partition": 0, "fetch_offset": offset,
                                                                               "partition_max_bytes": 1 << 20}]}],
                                          "forgotten_topics_data": [], "rack_id": ""}).responses[0].partitions[0]
    assert bytes(fetch(6).records) == stored(batch(10))  # the whole batch that holds offset 6
    assert fetch(10).error_code == 0 and bytes(fetch(10).records) == b""
    assert fetch(11).error_code == ErrorCode.OFFSET_OUT_OF_RANGE


def test_long_poll_wakes_on_append(kafka_broker: RunningBroker, client: WireClient) -> None:
    create_topic(client, "poll")
    started = time.monotonic()
    client.send(FETCH, 12, {"replica_id": -1, "max_wait_ms": 5000, "min_bytes": 1, "max_bytes": 1 << 20,
                            "isolation_level": 0, "topics": [{"topic": "poll", "partitions": [
                                {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}]})
    time.sleep(0.3)
    producer = WireClient(kafka_broker.bootstrap_servers)
    producer.request(PRODUCE, 9, produce_body("poll", batch(1)))
    producer.close()
    _, r = client.receive(FETCH, 12)
    elapsed = time.monotonic() - started
    assert bytes(r.responses[0].partitions[0].records) != b""
    assert elapsed < 2.5, f"fetch waited {elapsed:.2f}s for data appended after 0.3s"


def test_long_poll_times_out_empty(client: WireClient) -> None:
    create_topic(client, "quiet")
    started = time.monotonic()
    r = client.request(FETCH, 12, {"replica_id": -1, "max_wait_ms": 300, "min_bytes": 1, "max_bytes": 1 << 20,
                                   "isolation_level": 0, "topics": [{"topic": "quiet", "partitions": [
                                       {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}]})
    assert time.monotonic() - started >= 0.28
    assert bytes(r.responses[0].partitions[0].records) == b""


def test_idempotent_duplicates_and_sequence_gaps(client: WireClient) -> None:
    create_topic(client, "idem")
    pid = client.request(22, 4, {"transactional_id": None, "transaction_timeout_ms": 60000,
                                 "producer_id": -1, "producer_epoch": -1})
    assert pid.error_code == 0
    first = batch(3, producer_id=pid.producer_id, producer_epoch=pid.producer_epoch, base_sequence=0)
    r1 = client.request(PRODUCE, 9, produce_body("idem", first, acks=-1)).responses[0].partition_responses[0]
    again = client.request(PRODUCE, 9, produce_body("idem", first, acks=-1)).responses[0].partition_responses[0]
    assert r1.error_code == again.error_code == 0 and again.base_offset == r1.base_offset == 0
    gap = batch(2, producer_id=pid.producer_id, producer_epoch=pid.producer_epoch, base_sequence=7)
    r = client.request(PRODUCE, 9, produce_body("idem", gap, acks=-1)).responses[0].partition_responses[0]
    assert r.error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    nxt = batch(2, producer_id=pid.producer_id, producer_epoch=pid.producer_epoch, base_sequence=3)
    r = client.request(PRODUCE, 9, produce_body("idem", nxt, acks=-1)).responses[0].partition_responses[0]
    assert r.error_code == 0 and r.base_offset == 3
    old = batch(1, producer_id=pid.producer_id, producer_epoch=pid.producer_epoch - 1, base_sequence=5)
    r = client.request(PRODUCE, 9, produce_body("idem", old, acks=-1)).responses[0].partition_responses[0]
    assert r.error_code == ErrorCode.INVALID_PRODUCER_EPOCH


def test_a_handler_error_closes_only_that_connection(kafka_broker: RunningBroker, client: WireClient,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from pykbroker.handlers import metadata as metadata_handler

    def broken(*args: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(metadata_handler, "_lookup", broken)
    client.send(METADATA, 12, {"topics": [{"name": "x"}]})
    assert client.is_closed_by_peer()
    ok = WireClient(kafka_broker.bootstrap_servers)
    assert ok.request(API_VERSIONS, 3, {"client_software_name": "t", "client_software_version": "1"}).error_code == 0
    ok.close()


def test_deleting_a_topic_drops_its_committed_offsets(client: WireClient) -> None:
    create_topic(client, "gone")
    commit = client.request(8, 8, {"group_id": "g-gone", "generation_id_or_member_epoch": -1, "member_id": "",
                                   "topics": [{"name": "gone", "partitions": [
                                       {"partition_index": 0, "committed_offset": 5}]}]})
    assert commit.topics[0].partitions[0].error_code == 0
    client.request(20, 6, {"topics": [{"name": "gone"}], "timeout_ms": 5000})
    create_topic(client, "gone")
    fetched = client.request(9, 8, {"groups": [{"group_id": "g-gone", "topics": None}]})
    assert fetched.groups[0].topics == []


def test_idle_producer_state_expires_after_producer_id_expiration_ms() -> None:
    """Kafka measures idleness from the producer's last batch timestamp: a producer whose last
    batch is older than producer.id.expiration.ms is forgotten, a recent one still de-duplicated."""
    settings = {"producer.id.expiration.ms": 3_600_000, "producer.id.expiration.check.interval.ms": 100}
    with running_broker(settings) as broker:
        c = WireClient(broker.bootstrap_servers)
        try:
            create_topic(c, "expiry")
            pids = [c.request(22, 4, {"transactional_id": None, "transaction_timeout_ms": 60000,
                                      "producer_id": -1, "producer_epoch": -1}) for _ in range(2)]
            now = int(time.time() * 1000)
            recent = build_batch([Record(0, 0, None, b"recent", [])], base_timestamp=now,
                                 producer_id=pids[0].producer_id, producer_epoch=0, base_sequence=0)
            old = batch(1, producer_id=pids[1].producer_id, producer_epoch=0, base_sequence=0)  # 2023

            def send(records: bytes) -> int:
                r = c.request(PRODUCE, 9, produce_body("expiry", records, acks=-1)).responses[0]
                assert r.partition_responses[0].error_code == 0
                return r.partition_responses[0].base_offset

            assert (send(recent), send(old)) == (0, 1)
            time.sleep(0.5)
            assert send(recent) == 0  # still known: the retry is a duplicate
            assert send(old) == 2  # forgotten: the same batch is a new write
        finally:
            c.close()


DESCRIBE_TOPIC_PARTITIONS = 75
TOPIC_OPERATIONS = 3576  # READ WRITE CREATE DELETE ALTER DESCRIBE DESCRIBE_CONFIGS ALTER_CONFIGS, no authorizer


def describe_partitions(client: WireClient, topics: list[str], limit: int, cursor: tuple[str, int] | None = None):
    return client.request(DESCRIBE_TOPIC_PARTITIONS, 0, {
        "topics": [{"name": t} for t in topics], "response_partition_limit": limit,
        "cursor": None if cursor is None else {"topic_name": cursor[0], "partition_index": cursor[1]}})


def test_describe_topic_partitions_pages_with_a_cursor(client: WireClient) -> None:
    create_topic(client, "dtp-b", partitions=3)
    create_topic(client, "dtp-a", partitions=2)
    pages, cursor = [], None
    while True:
        r = describe_partitions(client, ["dtp-b", "dtp-a"], 2, cursor)
        pages.append([(t.name, [p.partition_index for p in t.partitions]) for t in r.topics])
        assert all(t.error_code == 0 and t.topic_authorized_operations == TOPIC_OPERATIONS for t in r.topics)
        if r.next_cursor is None:
            break
        cursor = (r.next_cursor.topic_name, r.next_cursor.partition_index)
    # name order; a page ends where the limit cuts, the next starts at the cursor
    assert pages == [[("dtp-a", [0, 1])], [("dtp-b", [0, 1])], [("dtp-b", [2])]]
    p = describe_partitions(client, ["dtp-a"], 10).topics[0].partitions[0]
    assert (p.leader_id, p.leader_epoch, list(p.replica_nodes), list(p.isr_nodes)) == (1, 0, [1], [1])
    assert list(p.eligible_leader_replicas) == [] and list(p.offline_replicas) == []


def test_describe_topic_partitions_errors(client: WireClient) -> None:
    r = describe_partitions(client, ["dtp-missing", "bad/name"], 10)
    assert {t.name: t.error_code for t in r.topics} == {
        "dtp-missing": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "bad/name": ErrorCode.INVALID_TOPIC_EXCEPTION}
    assert r.next_cursor is None
    # the cursor's topic must be one of those asked for (Kafka: INVALID_REQUEST for every topic)
    r = describe_partitions(client, ["dtp-missing"], 10, ("dtp-zzz", 0))
    assert [t.error_code for t in r.topics] == [ErrorCode.INVALID_REQUEST]
    # an empty list asks for every topic, unknown ones never reported, and no auto-creation happened
    every = [t.name for t in describe_partitions(client, [], 2000).topics]
    assert every == sorted(every) and "dtp-missing" not in every and "__consumer_offsets" in every


def test_metadata_reports_authorized_operations_only_when_asked(client: WireClient) -> None:
    create_topic(client, "ops")

    def ask(include: bool) -> object:
        return client.request(METADATA, 10, {"topics": [{"name": "ops", "topic_id": ZERO_UUID}],
                                             "allow_auto_topic_creation": False,
                                             "include_cluster_authorized_operations": include,
                                             "include_topic_authorized_operations": include})

    asked, not_asked = ask(True), ask(False)
    assert asked.topics[0].topic_authorized_operations == TOPIC_OPERATIONS
    assert asked.cluster_authorized_operations == sum(1 << c for c in (5, 9, 10, 11, 12, 7, 8))
    assert not_asked.topics[0].topic_authorized_operations == not_asked.cluster_authorized_operations == -2**31


def fetch_body(topic: str, partitions: dict[int, int], session_id: int, epoch: int,
               forgotten: dict[str, list[int]] | None = None, max_wait_ms: int = 0) -> dict:
    return {"replica_id": -1, "max_wait_ms": max_wait_ms, "min_bytes": 1, "max_bytes": 1 << 20,
            "isolation_level": 0, "session_id": session_id, "session_epoch": epoch,
            "topics": [{"topic": topic, "partitions": [
                {"partition": p, "current_leader_epoch": -1, "fetch_offset": o, "log_start_offset": -1,
                 "partition_max_bytes": 1 << 20} for p, o in partitions.items()]}] if partitions else [],
            "forgotten_topics_data": [{"topic": t, "partitions": ps} for t, ps in (forgotten or {}).items()],
            "rack_id": ""}


def test_fetch_sessions_full_then_incremental(client: WireClient) -> None:
    create_topic(client, "sessions", partitions=3)
    for p in range(3):
        r = client.request(PRODUCE, 9, {"acks": -1, "timeout_ms": 5000, "topic_data": [
            {"name": "sessions", "partition_data": [{"index": p, "records": batch(2, start=10 * p)}]}]})
        assert r.responses[0].partition_responses[0].error_code == 0
    full = client.request(FETCH, 11, fetch_body("sessions", {0: 0, 1: 0, 2: 2}, 0, 0))
    assert full.error_code == 0 and full.session_id != 0
    assert sorted(p.partition_index for t in full.responses for p in t.partitions) == [0, 1, 2]
    sid = full.session_id
    # Incremental: positions of 0 and 1 moved past their data; 2 unchanged; nothing new anywhere.
    inc = client.request(FETCH, 11, fetch_body("sessions", {0: 2, 1: 2}, sid, 1))
    assert (inc.error_code, inc.session_id, inc.responses) == (0, sid, [])
    client.request(PRODUCE, 9, {"acks": -1, "timeout_ms": 5000, "topic_data": [
        {"name": "sessions", "partition_data": [{"index": 1, "records": batch(1, start=99)}]}]})
    inc = client.request(FETCH, 11, fetch_body("sessions", {}, sid, 2, max_wait_ms=2000))
    assert [(t.topic, [p.partition_index for p in t.partitions]) for t in inc.responses] == [("sessions", [1])]
    assert inc.responses[0].partitions[0].high_watermark == 3
    # Errors, as Kafka: the wrong epoch, an unknown session.
    assert client.request(FETCH, 11, fetch_body("sessions", {}, sid, 7)).error_code == ErrorCode.INVALID_FETCH_SESSION_EPOCH
    assert client.request(FETCH, 11, fetch_body("sessions", {}, sid + 1, 1)).error_code == \
        ErrorCode.FETCH_SESSION_ID_NOT_FOUND
    # Forgetting partition 1 leaves it out even when it has data; epoch -1 closes the session.
    client.request(PRODUCE, 9, {"acks": -1, "timeout_ms": 5000, "topic_data": [
        {"name": "sessions", "partition_data": [{"index": 1, "records": batch(1, start=100)}]}]})
    inc = client.request(FETCH, 11, fetch_body("sessions", {}, sid, 3, forgotten={"sessions": [1]}))
    assert inc.error_code == 0 and inc.responses == []
    closed = client.request(FETCH, 11, fetch_body("sessions", {0: 0}, sid, -1))
    assert closed.session_id == 0 and [p.partition_index for p in closed.responses[0].partitions] == [0]
    assert client.request(FETCH, 11, fetch_body("sessions", {}, sid, 4)).error_code == \
        ErrorCode.FETCH_SESSION_ID_NOT_FOUND


def test_kafka_python_consumer_uses_incremental_fetches(kafka_broker: RunningBroker) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    for i in range(30):
        producer.send("sessions-kp", b"%d" % i, partition=0)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer("sessions-kp", bootstrap_servers=kafka_broker.bootstrap_servers,
                             auto_offset_reset="earliest", group_id="sessions-kp", max_poll_records=5)
    got = []
    deadline = time.time() + 20
    sessions = kafka_broker.broker.fetch_sessions
    while (len(got) < 30 or not sessions.incremental_fetches) and time.time() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            got.extend(r.value for r in records)
    consumer.close()
    assert got == [b"%d" % i for i in range(30)]
    assert sessions.incremental_fetches > 0 and len(sessions) == 1


def test_offset_for_leader_epoch_and_stamped_batches(client: WireClient) -> None:
    """Appends carry the partition's leader epoch (partitionLeaderEpoch), and OffsetForLeaderEpoch
    says where an epoch ends, so consumers can validate their positions (KIP-320)."""
    create_topic(client, "epochs")
    client.request(PRODUCE, 9, produce_body("epochs", batch(3), acks=-1))
    fetched = client.request(FETCH, 11, fetch_body("epochs", {0: 0}, 0, -1))
    records = bytes(fetched.responses[0].partitions[0].records)
    assert struct.unpack_from(">i", records, 12)[0] == 0  # partitionLeaderEpoch of the stored batch

    def ask(epoch: int, current: int = -1) -> object:
        r = client.request(23, 4, {"replica_id": -1, "topics": [{"topic": "epochs", "partitions": [
            {"partition": 0, "current_leader_epoch": current, "leader_epoch": epoch}]}]})
        return r.topics[0].partitions[0]

    now = ask(0, current=0)
    assert (now.error_code, now.leader_epoch, now.end_offset) == (0, 0, 3)
    assert (ask(5).leader_epoch, ask(5).end_offset) == (-1, -1)  # an epoch this leader never had
    assert ask(0, current=1).error_code == ErrorCode.UNKNOWN_LEADER_EPOCH
    missing = client.request(23, 4, {"replica_id": -1, "topics": [{"topic": "no-such", "partitions": [
        {"partition": 0, "current_leader_epoch": -1, "leader_epoch": 0}]}]})
    assert missing.topics[0].partitions[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_broker_fetch_max_bytes_caps_every_fetch_version() -> None:
    """Kafka's fetch.max.bytes bounds a response whatever the request asks: Fetch v0-2 carry no
    max_bytes (their records are down-converted in memory), v3+ ask for more than the broker allows."""
    with running_broker({"fetch.max.bytes": 4096}) as broker:
        c = WireClient(broker.bootstrap_servers)
        try:
            create_topic(c, "capped", partitions=3)
            for p in range(3):
                body = produce_body("capped", build_batch([Record(0, 0, None, b"x" * 3000, [])],
                                                          base_timestamp=1_700_000_000_000))
                body["topic_data"][0]["partition_data"][0]["index"] = p
                assert c.request(PRODUCE, 9, body).responses[0].partition_responses[0].error_code == 0
            parts = [{"partition": p, "fetch_offset": 0, "partition_max_bytes": 1 << 20} for p in range(3)]
            for version, extra in ((0, {}), (2, {}), (11, {"max_bytes": 1 << 30, "isolation_level": 0,
                                                           "session_id": 0, "session_epoch": -1,
                                                           "forgotten_topics_data": [], "rack_id": ""})):
                r = c.request(FETCH, version, {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, **extra,
                                               "topics": [{"topic": "capped", "partitions": parts}]})
                sizes = [len(bytes(p.records)) for p in r.responses[0].partitions]
                # The first partition's batch comes whole (KIP-74); the next one would pass 4096 bytes.
                assert sizes[0] > 3000 and sizes[1:] == [0, 0], (version, sizes)
        finally:
            c.close()
