"""The broker config table: Kafka's names (from kafka_configs.json), ranges and suggestions."""

from __future__ import annotations

import pytest

from pykbroker.config import SETTINGS, BrokerConfig, ConfigError, kafka_broker_configs


def test_table_covers_both_kafka_lines_and_every_implemented_setting() -> None:
    table = kafka_broker_configs()
    assert len(table) > 300
    assert {"3.9.1", "4.4.0"} <= {v for row in table.values() for v in row["versions"]}
    missing = [s.key for s in SETTINGS if s.key not in table]
    # each SETTINGS row is a real Kafka broker config, except cluster.id: Kafka keeps it in
    # meta.properties (kafka-storage format --cluster-id), pykbroker also takes it as a setting
    assert missing == ["cluster.id"]


def test_known_kafka_name_without_effect_is_accepted_and_reported() -> None:
    config = BrokerConfig.from_mapping({"num.io.threads": "8", "process.roles": "broker", "num.partitions": "2"})
    assert config.num_partitions == 2
    assert config.ignored == ("num.io.threads", "process.roles")


@pytest.mark.parametrize("raw, message", [
    ({"num.partitons": "2"}, "did you mean 'num.partitions'?"),
    ({"socket.request.max.bytes": "99999999999"}, "must be in [1, 2147483647]"),
    ({"num.io.threads": "0"}, "must be in [1, 2147483647]"),
    ({"num.io.threads": "eight"}, "expected int"),
    ({"transactional.id.expiration.ms": str(2**31)}, "must be in [1, 2147483647]"),  # INT in Kafka
    ({"listeners": "PLAINTEXT://127.0.0.1:65536"}, "port must be in [0, 65535]"),
])
def test_bad_names_and_values_are_errors_naming_them(raw: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        BrokerConfig.from_mapping(raw)
    key, value = next(iter(raw.items()))
    assert message in str(info.value) and (key in str(info.value) or value in str(info.value))


def test_long_settings_take_int64_values() -> None:
    assert BrokerConfig.from_mapping({"queued.max.request.bytes": str(2**40)}).queued_max_request_bytes == 2**40
    assert BrokerConfig.from_mapping({"listeners": "PLAINTEXT://127.0.0.1:65535"}).listen_host_port[1] == 65535


def test_every_listener_is_checked_and_the_first_plaintext_one_is_served() -> None:
    config = BrokerConfig.from_mapping({"listeners": "PLAINTEXT://127.0.0.1:9092,CONTROLLER://:9093"})
    assert config.listen_host_port == ("127.0.0.1", 9092)
    with pytest.raises(ConfigError, match="99999"):
        BrokerConfig.from_mapping({"listeners": "PLAINTEXT://127.0.0.1:9092,CONTROLLER://:99999"})
    with pytest.raises(ConfigError, match="HOST:PORT"):
        BrokerConfig.from_mapping({"listeners": "PLAINTEXT://127.0.0.1:9092,CONTROLLER://nohost"})
    with pytest.raises(ConfigError, match="only PLAINTEXT"):
        BrokerConfig.from_mapping({"listeners": "SSL://127.0.0.1:9093"})


def test_queued_request_bytes_must_hold_the_largest_request() -> None:
    with pytest.raises(ConfigError, match="queued.max.request.bytes=1000 must be at least socket.request.max.bytes"):
        BrokerConfig.from_mapping({"queued.max.request.bytes": "1000", "socket.request.max.bytes": "2000"})
    assert BrokerConfig.from_mapping({"queued.max.request.bytes": "2000", "socket.request.max.bytes": "2000"})
    assert BrokerConfig.from_mapping({"queued.max.request.bytes": "-1"})
