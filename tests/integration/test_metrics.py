"""`pykbroker serve --metrics HOST:PORT`: a Prometheus endpoint scraped over HTTP while clients work."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pykbroker.testing import RunningBroker
from pykbroker.wire_client import WireClient

from test_cli import cli, ok, start_serve, stop_serve  # tests/integration is on sys.path (no __init__.py)


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def server(tmp_path: Path):
    s = start_serve("--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data"), "--metrics", "127.0.0.1:0")
    try:
        yield s
    finally:
        code, err = stop_serve(s)
        assert code == 0, err


def test_metrics_count_requests_bytes_and_expose_log_end_offsets(server) -> None:
    assert server.metrics_url and server.metrics_url.startswith("http://127.0.0.1:")
    assert server.metrics_url.endswith("/metrics")
    before = scrape(server.metrics_url)
    assert value(before, "pykbroker_requests_total", api="Produce") == 0
    assert value(before, "pykbroker_partitions") == 1  # __consumer_offsets

    b = server.bootstrap
    ok("topics", "--bootstrap", b, "create", "metered", "--partitions", "2")
    ok("produce", "--bootstrap", b, "--topic", "metered", "--partition", "1", stdin="".join(f"m{i}\n" for i in range(7)))
    ok("consume", "--bootstrap", b, "--topic", "metered", "--group", "watchers", "--from-beginning",
       "--max-messages", "7")

    after = scrape(server.metrics_url)
    assert value(after, "pykbroker_requests_total", api="Produce") >= 1
    assert value(after, "pykbroker_request_latency_seconds_count", api="Produce") >= 1
    assert value(after, "pykbroker_request_latency_seconds_sum", api="Produce") > 0
    assert value(after, "pykbroker_request_bytes_total", api="Produce") > 7 * 2  # the records went in
    assert value(after, "pykbroker_response_bytes_total", api="Fetch") > 7 * 2  # ...and came out
    assert value(after, "pykbroker_requests_total", api="CreateTopics") == 1
    assert value(after, "pykbroker_requests_total", api="OffsetCommit") == 1
    assert value(after, "pykbroker_log_end_offset", topic="metered", partition="1") == 7
    assert value(after, "pykbroker_log_end_offset", topic="metered", partition="0") == 0
    assert value(after, "pykbroker_log_start_offset", topic="metered", partition="1") == 0
    assert value(after, "pykbroker_log_size_bytes", topic="metered", partition="1") > 0
    assert value(after, "pykbroker_partitions") == 3
    assert value(after, "pykbroker_topics") == 2
    assert value(after, "pykbroker_groups") == 1
    assert value(after, "pykbroker_connections_total") >= 3  # one per CLI run


def test_open_connections_gauge_follows_clients(server) -> None:
    base = value(scrape(server.metrics_url), "pykbroker_open_connections")
    clients = [WireClient(server.bootstrap) for _ in range(3)]
    try:
        for c in clients:
            c.request(3, 12, {"topics": []})  # the connection is accepted and served
        assert value(scrape(server.metrics_url), "pykbroker_open_connections") == base + 3
    finally:
        for c in clients:
            c.close()
    deadline = time.monotonic() + 10
    while value(scrape(server.metrics_url), "pykbroker_open_connections") != base and time.monotonic() < deadline:
        time.sleep(0.05)
    assert value(scrape(server.metrics_url), "pykbroker_open_connections") == base


def test_metrics_are_off_by_default(kafka_broker: RunningBroker, tmp_path: Path) -> None:
    assert kafka_broker.broker is not None and kafka_broker.broker.observer is None
    s = start_serve("--listen", "127.0.0.1:0", "--data-dir", str(tmp_path))
    try:
        assert s.metrics_url is None and "metrics on" not in s.ready_line
    finally:
        stop_serve(s)


def test_bad_metrics_address_is_a_startup_error(tmp_path: Path) -> None:
    r = cli("serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path), "--metrics", "127.0.0.1:http", timeout=30)
    assert r.returncode == 2 and b"--metrics" in r.stderr


def test_open_transactions_and_last_stable_offset_lag(server) -> None:
    from test_transactions import create, producer

    b = server.bootstrap
    create(b, "txn-metered")
    p = producer(b, "txn-metered")
    p.begin_transaction()
    for i in range(4):
        p.produce("txn-metered", b"%d" % i, partition=0)
    p.flush(10)
    during = scrape(server.metrics_url)
    assert value(during, "pykbroker_open_transactions") == 1
    assert value(during, "pykbroker_last_stable_offset_lag", topic="txn-metered", partition="0") == 4
    p.commit_transaction(10)
    after = scrape(server.metrics_url)
    assert value(after, "pykbroker_open_transactions") == 0
    assert value(after, "pykbroker_last_stable_offset_lag", topic="txn-metered", partition="0") == 0


def test_transactions_v2_counters(server) -> None:
    """A Kafka 4 producer's flow (Produce v12 adds the partition, EndTxn v5 bumps) shows in the counters;
    a v1 transaction (confluent-kafka) moves neither."""
    from test_transactions import create, producer, transaction
    from test_transactions_v2 import end, init, produce

    from pykbroker.wire_client import WireClient

    b = server.bootstrap
    create(b, "txn-v2-metered")
    transaction(producer(b, "txn-v1-metered"), "txn-v2-metered", [b"a"], commit=True)
    before = scrape(server.metrics_url)
    assert value(before, "pykbroker_transaction_v2_partition_adds") == 0
    client = WireClient(b)
    try:
        p = init(client, "txn-v2-metered")
        assert produce(client, "txn-v2-metered", "txn-v2-metered", p.producer_id, p.producer_epoch, 0).error_code == 0
        assert end(client, "txn-v2-metered", p.producer_id, p.producer_epoch, commit=True).error_code == 0
    finally:
        client.close()
    after = scrape(server.metrics_url)
    assert value(after, "pykbroker_transaction_v2_partition_adds") == 1
    assert value(after, "pykbroker_transaction_v2_epoch_bumps") == 1
