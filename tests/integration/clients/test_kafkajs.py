"""kafkajs (pure JavaScript) against pykbroker: produce, transactions, group consumers."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from pykbroker.testing import RunningBroker

ROOT = Path(__file__).resolve().parents[3]
TOOLS = ROOT / ".tools"


@pytest.fixture(scope="session")
def kafkajs_modules() -> Path:
    setup = subprocess.run(["bash", str(ROOT / "tests" / "tools" / "setup_kafkajs.sh")], capture_output=True,
                           text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert setup.returncode == 0, f"setup_kafkajs.sh failed:\n{setup.stdout}\n{setup.stderr}"
    return TOOLS / "node" / "node_modules"


def test_kafkajs_transactions_and_read_committed(kafka_broker: RunningBroker, kafkajs_modules: Path,
                                                  topic_name: str) -> None:
    run = subprocess.run(["node", str(ROOT / "tests" / "js" / "kafkajs_check.mjs"), kafka_broker.bootstrap_servers,
                          topic_name], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "KAFKAJS_MODULES": str(kafkajs_modules)})
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["committed"] == ["plain", "c0", "c1"]
    assert seen["uncommitted"] == ["plain", "c0", "c1", "a0"]
