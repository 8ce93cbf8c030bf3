"""Fetch sessions (KIP-227) with real consumers on 100 partitions: the Java 4.4 consumer opens a session
with one full fetch and then sends incremental ones (session id != 0, epoch >= 1) that name only the
partitions whose position moved, which pykbroker_incremental_fetches counts. librdkafka does not
implement KIP-227 (its INTRODUCTION.md: "Not supported"; rdkafka_fetcher.c writes SessionId 0 and
epoch -1), so its fetches stay sessionless full fetches and the broker keeps no session for them.
"""

from __future__ import annotations

import time
from typing import Callable, NamedTuple

import pytest
from confluent_kafka import Consumer, TopicPartition

from pykbroker.handlers import HANDLERS, Handler
from pykbroker.metrics import BrokerStateCollector
from pykbroker.protocol.messages import API_KEYS
from pykbroker.testing import RunningBroker
from test_groups_confluent import setup_topic

PARTITIONS = 100


class SeenFetch(NamedTuple):
    session_id: int
    session_epoch: int
    partitions_named: int
    answered_session_id: int


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch) -> list[SeenFetch]:
    """Every Fetch the broker answers during the test: the session the client named, and the one answered."""
    seen: list[SeenFetch] = []
    h = HANDLERS[API_KEYS["FETCH"]]

    async def recording(broker, ctx, req, fn=h.fn):  # type: ignore[no-untyped-def]
        response = await fn(broker, ctx, req)
        named = sum(len(t.partitions) for t in req.topics)
        seen.append(SeenFetch(req.get("session_id", 0), req.get("session_epoch", -1), named,
                              response.get("session_id", 0)))
        return response
    monkeypatch.setitem(HANDLERS, h.api_key, Handler(h.api_key, h.min_version, h.max_version, recording))
    return seen


def metric(kafka_broker: RunningBroker, name: str) -> float:
    """The value the broker's Prometheus collector reports (read on the broker's loop)."""
    collector = BrokerStateCollector(kafka_broker.broker, kafka_broker._token)  # type: ignore[arg-type]
    return next(f.samples[0].value for f in collector.collect() if f.name == name)


def test_java4x_consumer_fetches_incrementally_on_100_partitions(kafka_broker: RunningBroker, java4x: Callable,
                                                                  fetches: list[SeenFetch], topic_name: str) -> None:
    bs = kafka_broker.bootstrap_servers
    setup_topic(bs, topic_name, partitions=PARTITIONS, count=3 * PARTITIONS)
    # A small fetch.max.bytes makes the consumer need many fetches for the 300 records.
    out = java4x(["consume", "--bootstrap", bs, "--topic", topic_name, "--count", str(3 * PARTITIONS),
                  "--prop", "fetch.max.bytes=4096"], timeout=90)
    assert out["count"] == 3 * PARTITIONS
    full = [f for f in fetches if f.session_epoch == 0]
    incremental = [f for f in fetches if f.session_id != 0 and f.session_epoch >= 1]
    assert full and full[0].partitions_named == PARTITIONS and full[0].answered_session_id != 0
    assert len(incremental) >= 3, fetches
    assert {f.answered_session_id for f in incremental} <= {f.answered_session_id for f in full}
    assert all(f.partitions_named < PARTITIONS for f in incremental)  # only the partitions that moved
    assert metric(kafka_broker, "pykbroker_incremental_fetches") >= len(incremental)


def test_librdkafka_consumer_fetches_without_a_session(kafka_broker: RunningBroker,
                                                       fetches: list[SeenFetch], topic_name: str) -> None:
    bs = kafka_broker.bootstrap_servers
    setup_topic(bs, topic_name, partitions=PARTITIONS, count=PARTITIONS)
    consumer = Consumer({"bootstrap.servers": bs, "group.id": "rdk-sessions", "fetch.max.bytes": 4096,
                         "message.max.bytes": 4096})
    consumer.assign([TopicPartition(topic_name, p, 0) for p in range(PARTITIONS)])
    got, deadline = 0, time.monotonic() + 30
    while (got < PARTITIONS or len(fetches) < 3) and time.monotonic() < deadline:
        got += sum(1 for m in consumer.consume(100, 0.2) if not m.error())
    consumer.close()
    assert got == PARTITIONS and len(fetches) >= 3
    assert {(f.session_id, f.session_epoch, f.answered_session_id) for f in fetches} == {(0, -1, 0)}
    assert metric(kafka_broker, "pykbroker_fetch_sessions") == 0
    assert metric(kafka_broker, "pykbroker_incremental_fetches") == 0
