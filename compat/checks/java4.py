"""The Apache Kafka Java client 4.x (kafka-clients 4.4.0, from Maven Central): the java checks, with
KafkaCheck compiled against 4.4.0 (tests/tools/setup_java_client_4x.sh).

java.py's checks pick their build from the client of the check's context, so this module only names
the build; 3.9.1 stays the "java" column.
"""

from __future__ import annotations

from . import java
from .java import checks, cleanup  # noqa: F401  (the client module interface)

CLIENT = "java-4"
BUILD = java.BUILDS[CLIENT]


def available() -> str | None:
    return java.available(BUILD)


def prepare(timeout_s: float = 600) -> str | None:
    return java.prepare(timeout_s, BUILD)


def version() -> str:
    return java.version(BUILD)
