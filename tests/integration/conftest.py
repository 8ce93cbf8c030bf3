"""Integration tests: a real pykbroker (the `kafka_broker` fixture of pykbroker's pytest plugin)
and real clients over real sockets on 127.0.0.1."""

from __future__ import annotations

import uuid

import pytest

COMPRESSIONS = ["none", "gzip", "snappy", "lz4", "zstd"]


@pytest.fixture
def topic_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def zookeeper(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One real ZooKeeper for the cluster tests (each cluster uses its own chroot); set up on first use."""
    from pykbroker.tools.zookeeper import zookeeper_server
    with zookeeper_server(tmp_path_factory.mktemp("zookeeper")) as zk:
        yield zk
