"""Shared test configuration."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "kafka-protocol"
SETUP_KAFKA4 = Path(__file__).resolve().parent / "tools" / "setup_kafka_messages.sh"


@pytest.fixture(scope="session")
def kafka_reference() -> Path:
    """Kafka 3.9.1's message definitions, present in the project's workspace but not in a user's checkout."""
    if not (REFERENCE / "message").is_dir():
        pytest.skip(f"Kafka reference definitions not found at {REFERENCE} (only in the project's workspace)")
    return REFERENCE


@pytest.fixture(scope="session")
def kafka4_reference() -> Path:
    """Kafka 4.x's definitions, set up in .tools/ from Maven Central; failing to get them fails the test."""
    done = subprocess.run([str(SETUP_KAFKA4)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"{SETUP_KAFKA4.name} failed (exit {done.returncode}), so Kafka 4.x's definitions are "
                    f"missing; it needs mvn, javac and Maven Central:\n{done.stderr[-2000:]}", pytrace=False)
    return Path(done.stdout.strip().splitlines()[-1])
