"""The server's limits over real sockets: connections.max.idle.ms, max.connections(.per.ip),
queued.max.request.bytes, unserved apis and rate-limited warnings."""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time

import pytest

from pykbroker.protocol.frame import encode_request
from pykbroker.testing import RunningBroker, running_broker
from pykbroker.wire_client import WireClient

API_VERSIONS, METADATA, PRODUCE, CREATE_TOPICS = 18, 3, 0, 19
WAIT_S = 10  # generous bound for anything that should happen "soon"


def api_versions(client: WireClient) -> int:
    return client.request(API_VERSIONS, 3, {"client_software_name": "t", "client_software_version": "1"}).error_code


def closed_by_broker(sock: socket.socket, timeout_s: float = WAIT_S) -> bool:
    """True once the broker has closed the connection (EOF or reset) -- draining whatever it sent
    first; False if it is still open after `timeout_s`."""
    sock.settimeout(timeout_s)
    try:
        while sock.recv(1 << 16):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def eventually(check, timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def idle_broker():
    with running_broker({"connections.max.idle.ms": 300}) as b:
        yield b


def test_an_idle_connection_is_closed(idle_broker: RunningBroker) -> None:
    c = WireClient(idle_broker.bootstrap_servers)
    assert api_versions(c) == 0
    assert closed_by_broker(c.sock)
    c.close()


def test_a_half_sent_frame_is_closed(idle_broker: RunningBroker) -> None:
    c = WireClient(idle_broker.bootstrap_servers)
    frame = encode_request(API_VERSIONS, 3, 1, "t", {"client_software_name": "t", "client_software_version": "1"})
    c.send_raw(frame[:len(frame) // 2])
    assert closed_by_broker(c.sock)
    c.close()


def test_a_client_that_stops_reading_is_closed(idle_broker: RunningBroker) -> None:
    """Pipelined requests with large responses that the client never reads: the broker's send is
    stuck, and it closes the connection after connections.max.idle.ms instead of holding it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((idle_broker.host, idle_broker.port))
    topics = [{"name": f"{'n' * 200}-{i}"} for i in range(5000)]  # ~1 MB request, ~1 MB response
    request = encode_request(METADATA, 4, 1, "t", {"topics": topics, "allow_auto_topic_creation": False})
    requests = 30
    sock.settimeout(5)
    try:
        sock.sendall(request * requests)
    except (socket.timeout, ConnectionError):
        pass  # the broker stopped reading: it holds one request at a time
    time.sleep(1.5)
    received = 0
    sock.settimeout(WAIT_S)
    try:
        while chunk := sock.recv(1 << 16):
            received += len(chunk)
        closed = True
    except ConnectionResetError:
        closed = True
    except socket.timeout:
        closed = False
    sock.close()
    assert closed, "the broker kept a connection whose client stopped reading"
    assert received < requests * len(request) // 2  # it did not get to answer them all


def test_a_slow_request_is_not_idle(idle_broker: RunningBroker) -> None:
    c = WireClient(idle_broker.bootstrap_servers)
    c.request(CREATE_TOPICS, 7, {"topics": [{"name": "slow", "num_partitions": 1, "replication_factor": 1}],
                                 "timeout_ms": 5000})
    r = c.request(1, 12, {"replica_id": -1, "max_wait_ms": 1000, "min_bytes": 1, "max_bytes": 1 << 20,
                          "isolation_level": 0, "topics": [{"topic": "slow", "partitions": [
                              {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}]})
    assert r.responses[0].partitions[0].error_code == 0  # a 1 s long poll outlives a 300 ms idle limit
    c.close()


def test_max_connections_per_ip_closes_new_connections_at_once() -> None:
    with running_broker({"max.connections.per.ip": 2}) as broker:
        a, b = WireClient(broker.bootstrap_servers), WireClient(broker.bootstrap_servers)
        assert api_versions(a) == 0 and api_versions(b) == 0
        third = WireClient(broker.bootstrap_servers)
        assert closed_by_broker(third.sock)
        third.close()
        a.close()

        def a_new_one_is_served() -> bool:
            c = WireClient(broker.bootstrap_servers)
            try:
                return api_versions(c) == 0
            except (ConnectionError, OSError):
                return False
            finally:
                c.close()
        assert eventually(a_new_one_is_served)
        b.close()


def test_max_connections_per_ip_overrides() -> None:
    with running_broker({"max.connections.per.ip": 10, "max.connections.per.ip.overrides": "127.0.0.1:1"}) as broker:
        a = WireClient(broker.bootstrap_servers)
        assert api_versions(a) == 0
        b = WireClient(broker.bootstrap_servers)
        assert closed_by_broker(b.sock)
        a.close()
        b.close()


def test_max_connections_stops_accepting_until_one_closes() -> None:
    with running_broker({"max.connections": 2}) as broker:
        a, b = WireClient(broker.bootstrap_servers), WireClient(broker.bootstrap_servers)
        assert api_versions(a) == 0 and api_versions(b) == 0
        waiting = WireClient(broker.bootstrap_servers, timeout_s=1)  # connects: the kernel's backlog holds it
        sent = waiting.send(API_VERSIONS, 3, {"client_software_name": "t", "client_software_version": "1"})
        with pytest.raises(socket.timeout):
            waiting.read_frame()  # not accepted, so not answered
        a.close()
        waiting.sock.settimeout(WAIT_S)
        correlation_id, r = waiting.receive(API_VERSIONS, 3)
        assert correlation_id == sent and r.error_code == 0
        waiting.close()
        b.close()


def test_frames_that_fill_the_request_pool_are_served_one_at_a_time() -> None:
    # ~10 KB frames from 4 clients into a pool that holds one (Kafka requires it to hold the largest).
    with running_broker({"queued.max.request.bytes": 12000, "socket.request.max.bytes": 12000}) as broker:
        results: list[int] = []

        def client() -> None:
            c = WireClient(broker.bootstrap_servers)
            for i in range(5):
                r = c.request(METADATA, 4, {"topics": [{"name": f"{'p' * 200}-{j}"} for j in range(50)],
                                            "allow_auto_topic_creation": False})
                results.append(len(r.topics))
            c.close()

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert results == [50] * 20


def test_an_unserved_api_closes_the_connection_without_a_traceback(kafka_broker: RunningBroker,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="pykbroker"):
        c = WireClient(kafka_broker.bootstrap_servers)
        c.send_raw(struct.pack(">ihhii", 12, 7, 0, 42, 1))  # ControlledShutdown v0: request header v0
        assert closed_by_broker(c.sock)
        c.close()
        assert eventually(lambda: any("CONTROLLED_SHUTDOWN v0 is not served" in r.getMessage()
                                      for r in caplog.records))
    assert [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info] == []
    ok = WireClient(kafka_broker.bootstrap_servers)
    assert api_versions(ok) == 0
    ok.close()


def test_malformed_connection_warnings_are_rate_limited(kafka_broker: RunningBroker,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pykbroker"):
        for i in range(200):
            c = WireClient(kafka_broker.bootstrap_servers)
            c.send_raw(struct.pack(">ihhi", 8, METADATA, 9, i))  # no room for the client id
            assert closed_by_broker(c.sock)
            c.close()
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("pykbroker")]
    assert 1 <= len(warnings) <= 10, warnings
