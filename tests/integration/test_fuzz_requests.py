"""Random well-formed requests of every served API and version: the broker answers or closes the
connection, and never hits an internal error (a handler bug) -- nor stops serving others."""

from __future__ import annotations

import logging
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec_strategies import for_struct
from pykbroker.handlers import HANDLERS
from pykbroker.protocol.messages import API_NAMES, request_codec
from pykbroker.testing import RunningBroker, running_broker
from pykbroker.wire_client import WireClient

SERVED = [(key, v) for key, h in sorted(HANDLERS.items()) for v in range(h.min_version, h.max_version + 1)]


def tame(api_key: int, body: dict) -> dict:
    """Keep the request from legitimately waiting: no long polls, no acks=0 silence."""
    if API_NAMES[api_key] == "FETCH":
        body["max_wait_ms"] = 0
    if API_NAMES[api_key] == "PRODUCE":
        body["acks"] = 1
    if API_NAMES[api_key] == "JOIN_GROUP":
        body["rebalance_timeout_ms"] = min(body.get("rebalance_timeout_ms", 0), 1000)
    return body


@pytest.fixture(scope="module")
def broker():
    with running_broker() as b:
        yield b


@settings(max_examples=len(SERVED) * 5, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_requests_never_hit_an_internal_error(broker: RunningBroker, data: st.DataObject,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    api_key, version = data.draw(st.sampled_from(SERVED), label="api")
    body = tame(api_key, data.draw(for_struct(request_codec(api_key, version).schema), label="body"))
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="pykbroker"):
        client = WireClient(broker.bootstrap_servers, timeout_s=10)
        try:
            client.send(api_key, version, body)
            try:
                client.receive(api_key, version)
            except (ConnectionError, socket.timeout):
                pass  # closing the connection is an acceptable answer to nonsense
        finally:
            client.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], f"{API_NAMES[api_key]} v{version}: {errors}"
