#!/usr/bin/env python3
"""Container entrypoint: Kafka-image-style environment variables -> `pykbroker` command line.

    KAFKA_NUM_PARTITIONS=3                      -> --set num.partitions=3
    KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://broker:9092 -> --set advertised.listeners=PLAINTEXT://broker:9092
    KAFKA_LISTENERS=PLAINTEXT://0.0.0.0:9092    -> --set listeners=PLAINTEXT://0.0.0.0:9092
    KAFKA_LOG_RETENTION_HOURS=24                -> --set log.retention.hours=24

Names: drop KAFKA_, lowercase, `_` -> `.`, `__` -> `_`, `___` -> `-` (the Confluent image's rule).
Defaults: listen on 0.0.0.0:9092, data in /data (unless KAFKA_LISTENERS / KAFKA_LOG_DIRS say otherwise).
CLUSTER_ID (as in the apache/kafka image) sets cluster.id; PYKBROKER_LOG_LEVEL sets --log-level.
Settings that only mean something to a JVM or a multi-node KRaft cluster are ignored with a note on
stderr; any other unknown key stops pykbroker with a message naming it.

Arguments: options are appended after the environment's (so `--set k=v` on the command line wins);
a first argument that is not an option (`bash`, `python`, ...) is run instead of the broker;
`--healthcheck` sends ApiVersions to the local listener and exits 0 when the broker answers.
"""

from __future__ import annotations

import os
import sys
from typing import Mapping, Sequence

DEFAULT_LISTEN = "0.0.0.0:9092"
DEFAULT_DATA_DIR = "/data"

# KAFKA_* variables read by Kafka's JVM launch scripts, not broker settings.
JVM_VARIABLES = frozenset({
    "KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_GC_LOG_OPTS", "KAFKA_JMX_OPTS",
    "KAFKA_JMX_PORT", "KAFKA_JMX_HOSTNAME", "KAFKA_LOG4J_OPTS", "KAFKA_LOG4J_ROOT_LOGLEVEL",
    "KAFKA_LOG4J_LOGGERS", "KAFKA_TOOLS_LOG4J_LOGLEVEL", "KAFKA_DEBUG", "KAFKA_VERSION", "KAFKA_HOME",
})
# Broker settings of a multi-node or KRaft cluster that a single-node pykbroker has no use for; compose
# files written for the apache/kafka or Confluent images set them routinely.
CLUSTER_ONLY_KEYS = frozenset({
    "process.roles", "controller.quorum.voters", "controller.quorum.bootstrap.servers",
    "controller.listener.names", "listener.security.protocol.map", "inter.broker.listener.name",
    "offsets.topic.replication.factor", "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr", "confluent.support.metrics.enable", "zookeeper.connect",
})


def env_key_to_config(name: str) -> str:
    """KAFKA_LOG_RETENTION_HOURS -> log.retention.hours; `__` -> `_`, `___` -> `-`."""
    body = name[len("KAFKA_"):].lower()
    return body.replace("___", "\0").replace("__", "\1").replace("_", ".").replace("\0", "-").replace("\1", "_")


def _pykbroker_knows(key: str) -> bool:
    """Whether this pykbroker accepts `key` (a later version may serve what is ignored today)."""
    try:
        from pykbroker.config import ALIASES, BY_KEY, LOG_KEYS
    except ImportError:
        return False
    return key in BY_KEY or key in LOG_KEYS or key in ALIASES


def build_args(env: Mapping[str, str], argv: Sequence[str] = (),
               notes: list[str] | None = None) -> list[str]:
    """The pykbroker arguments for this environment, then `argv`."""
    notes = notes if notes is not None else []
    settings: dict[str, str] = {}
    for name in sorted(env):
        if not name.startswith("KAFKA_") or name == "KAFKA_":
            continue
        if name in JVM_VARIABLES or name.startswith("KAFKA_JMX_"):
            notes.append(f"ignoring {name} (a JVM launcher setting)")
            continue
        key = env_key_to_config(name)
        if key in CLUSTER_ONLY_KEYS and not _pykbroker_knows(key):
            notes.append(f"ignoring {name} ({key} has no meaning on a single-node pykbroker)")
            continue
        settings[key] = env[name]
    if env.get("CLUSTER_ID") and "cluster.id" not in settings:
        settings["cluster.id"] = env["CLUSTER_ID"]

    args: list[str] = []
    if "listeners" not in settings:
        args += ["--listen", DEFAULT_LISTEN]
    if "log.dirs" not in settings and "log.dir" not in settings:
        args += ["--data-dir", DEFAULT_DATA_DIR]
    if env.get("PYKBROKER_LOG_LEVEL"):
        args += ["--log-level", env["PYKBROKER_LOG_LEVEL"]]
    for key, value in settings.items():
        args += ["--set", f"{key}={value}"]
    return args + list(argv)


def listener_address(env: Mapping[str, str]) -> tuple[str, int]:
    """Where the broker in this container listens, as a local client should dial it."""
    spec = env.get("KAFKA_LISTENERS") or DEFAULT_LISTEN
    spec = spec.split(",")[0].strip()
    spec = spec.split("://", 1)[-1]
    host, _, port = spec.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return host, int(port)


def healthcheck(env: Mapping[str, str], timeout_s: float = 3) -> int:
    """0 when the broker answers ApiVersions without error, 1 otherwise (Docker's HEALTHCHECK)."""
    host, port = listener_address(env)
    try:
        from pykbroker.wire_client import WireClient
        client = WireClient(f"{host}:{port}", timeout_s=timeout_s)
        try:
            response = client.request(18, 0, {})  # ApiVersions v0
        finally:
            client.close()
    except Exception as e:
        print(f"unhealthy: {host}:{port}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if response["error_code"] != 0:
        print(f"unhealthy: ApiVersions error code {response['error_code']}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ if env is None else env)
    if argv[:1] == ["--healthcheck"]:
        return healthcheck(env)
    if argv[:1] == ["serve"]:
        argv = argv[1:]
    if argv and not argv[0].startswith("-"):
        os.execvp(argv[0], argv)  # e.g. `docker run IMAGE bash`
        return 127  # not reached
    notes: list[str] = []
    args = build_args(env, argv, notes)
    for note in notes:
        print(f"entrypoint: {note}", file=sys.stderr)
    sys.stderr.flush()
    os.execvp("pykbroker", ["pykbroker", *args])  # PID 1 becomes the broker: it gets SIGTERM directly
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
