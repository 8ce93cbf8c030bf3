"""Client quotas over real sockets: AlterClientQuotas/DescribeClientQuotas from kafka-python's own
request classes and the wire client, persistence across a restart, and byte-rate enforcement of
real producers and consumers (throttle_time_ms plus a muted connection, as Kafka).

The brokers here measure rates over quota.window.num=1 sample of 1 s. With Kafka's default of 11
samples a new client may first burst (11 - 1) s worth of its quota (Kafka's Rate assumes that much
past time), which would dominate any 5 s measurement; one sample shows the steady rate the
throttling holds a client to.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from compat.checks.quotas import consume_flat_out, fill, produce_flat_out
from pykbroker.testing import running_broker
from pykbroker.wire_client import WireClient

MiB = 1 << 20
QUOTA = MiB
WINDOW = {"quota.window.num": 1, "quota.window.size.seconds": 1}


def _alter(bootstrap: str, entity: list[tuple[str, str | None]], ops: dict[str, float | None],
           validate_only: bool = False) -> list:
    client = WireClient(bootstrap)
    try:
        return client.request(49, 1, {"entries": [{
            "entity": [{"entity_type": t, "entity_name": n} for t, n in entity],
            "ops": [{"key": k, "value": v or 0.0, "remove": v is None} for k, v in ops.items()]}],
            "validate_only": validate_only}).entries
    finally:
        client.close()


def test_kafka_python_alters_and_describes_quotas_which_survive_a_restart(tmp_path: Path) -> None:
    from kafka.admin import KafkaAdminClient
    from kafka.protocol.admin.client_quotas import AlterClientQuotasRequest, DescribeClientQuotasRequest

    def alter(admin, entity, key, value, remove=False, validate_only=False):
        entry = AlterClientQuotasRequest.EntryData(
            entity=[AlterClientQuotasRequest.EntryData.EntityData(entity_type=t, entity_name=n) for t, n in entity],
            ops=[AlterClientQuotasRequest.EntryData.OpData(key=key, value=value, remove=remove)])
        response = admin._manager.run(admin._manager.send,
                                      AlterClientQuotasRequest(entries=[entry], validate_only=validate_only))
        return [(e.error_code, e.error_message) for e in response.entries]

    def describe(admin, components=(), strict=False):
        request = DescribeClientQuotasRequest(components=[
            DescribeClientQuotasRequest.ComponentData(entity_type=t, match_type=m, match=n) for t, m, n in components],
            strict=strict)
        response = admin._manager.run(admin._manager.send, request)
        return response.error_code, {frozenset((e.entity_type, e.entity_name) for e in entry.entity):
                                     {v.key: v.value for v in entry.values} for entry in response.entries or []}

    data = tmp_path / "data"
    with running_broker({}, data_dir=data) as broker:
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        try:
            assert alter(admin, [("user", "alice"), ("client-id", None)], "producer_byte_rate", 2048.0) == [(0, None)]
            assert alter(admin, [("client-id", "c1")], "consumer_byte_rate", 4096.0, validate_only=True) == [(0, None)]
            code, message = alter(admin, [("ip", "127.0.0.1")], "producer_byte_rate", 1.0)[0]
            assert code == 42 and message == "Invalid configuration key producer_byte_rate"  # INVALID_REQUEST
            assert alter(admin, [("ip", None)], "connection_creation_rate", 10.0) == [(0, None)]
            assert describe(admin) == (0, {frozenset({("user", "alice"), ("client-id", None)}): {"producer_byte_rate": 2048.0},
                                           frozenset({("ip", None)}): {"connection_creation_rate": 10.0}})
            assert describe(admin, [("user", 0, "alice")], strict=True) == (0, {})  # the entity also has client-id
            assert describe(admin, [("ip", 1, None)])[1] == {frozenset({("ip", None)}): {"connection_creation_rate": 10.0}}
            assert describe(admin, [("group", 0, "g")]) == (35, {})  # UNSUPPORTED_VERSION, as Kafka
        finally:
            admin.close()
    saved = json.loads((data / "client-quotas.json").read_text())
    assert len(saved["entries"]) == 2
    with running_broker({}, data_dir=data) as broker:
        client = WireClient(broker.bootstrap_servers)
        try:
            described = client.request(48, 0, {"components": [{"entity_type": "user", "match_type": 2, "match": None}],
                                               "strict": False})
        finally:
            client.close()
    assert [[(v.key, v.value) for v in e["values"]] for e in described.entries] == [[("producer_byte_rate", 2048.0)]]


def test_an_unreadable_quota_file_stops_the_start(tmp_path: Path) -> None:
    """Starting without the quotas would run every client unthrottled: refuse, naming the file."""
    import pytest

    from pykbroker.broker import Broker
    from pykbroker.config import BrokerConfig
    from pykbroker.log.errors import UnreadableMetadataError

    data = tmp_path / "data"
    data.mkdir()
    (data / "client-quotas.json").write_text('{"version": 1, "entries": [{"entity": [["user", ""]], "quotas": {}}]}')
    with pytest.raises(UnreadableMetadataError, match="client-quotas.json.*Empty user not supported"):
        Broker(BrokerConfig.from_mapping({"log.dirs": str(data)}))


def assert_held_to_quota(rate: float) -> None:
    """At most 10 % over the quota; below it only as far as a loaded CI machine may keep the client
    itself from reaching it (seen: 0.90 MiB/s at load average 7 on 2 cores): the
    lower bound only catches a throttle far too strong."""
    assert 0.6 * QUOTA < rate < 1.10 * QUOTA, f"{rate / MiB:.3f} MiB/s for a 1 MiB/s quota"


def test_a_producer_over_its_byte_rate_is_held_to_it(tmp_path: Path) -> None:
    with running_broker(WINDOW, data_dir=tmp_path / "data") as broker:
        free, seconds, _ = produce_flat_out(broker.bootstrap_servers, "quota-t", "free-producer", 2)
        assert free / seconds > 3 * QUOTA  # otherwise the quota below would prove nothing
        assert _alter(broker.bootstrap_servers, [("client-id", "slow-producer")],
                      {"producer_byte_rate": float(QUOTA)})[0].error_code == 0
        acked, seconds, throttle = produce_flat_out(broker.bootstrap_servers, "quota-t", "slow-producer", 5)
    rate = acked / seconds
    assert_held_to_quota(rate)
    assert throttle > 0  # the responses told the client how long it was throttled


def test_a_consumer_over_its_byte_rate_is_held_to_it(tmp_path: Path) -> None:
    with running_broker(WINDOW, data_dir=tmp_path / "data") as broker:
        fill(broker.bootstrap_servers, "quota-c", 12)  # more than the consumer can take in the measurement
        assert _alter(broker.bootstrap_servers, [("client-id", "slow-consumer")],
                      {"consumer_byte_rate": float(QUOTA)})[0].error_code == 0
        received, seconds = consume_flat_out(broker.bootstrap_servers, "quota-c", "slow-consumer", 5)
    rate = received / seconds
    assert_held_to_quota(rate)
