"""Shared test configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "kafka-protocol"


@pytest.fixture(scope="session")
def kafka_reference() -> Path:
    """Kafka 3.9.1's message definitions, present in the project's workspace but not in a user's checkout."""
    if not (REFERENCE / "message").is_dir():
        pytest.skip(f"Kafka reference definitions not found at {REFERENCE} (only in the project's workspace)")
    return REFERENCE
