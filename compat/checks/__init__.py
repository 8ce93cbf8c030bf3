"""One module per client; each has CLIENT, available(), version(), cleanup(ctx) and `checks` (a CheckSet).

Modules are imported lazily: importing one imports its client library.
"""

from __future__ import annotations

import importlib
from types import ModuleType

MODULES = {
    "kafka-python": "compat.checks.kafka_python",
    "confluent-kafka": "compat.checks.confluent",
    "aiokafka": "compat.checks.aiokafka_client",
    "java": "compat.checks.java",
    "java-4": "compat.checks.java4",
    "kcat": "compat.checks.kcat",
    "franz-go": "compat.checks.franz_go",
}


def load(client: str) -> ModuleType:
    return importlib.import_module(MODULES[client])
