#!/usr/bin/env bash
# Compiles tests/java/*.java (KafkaCheck) against the Kafka 4.4.0 Java client, idempotently, so the
# integration tests can drive pykbroker with a Kafka 4.x client as well as the 3.9.1 one
# (tests/tools/setup_java_client.sh). The jars come from setup_kafka_messages.sh (Maven Central).
#
# Usage: tests/tools/setup_java_client_4x.sh      (same environment and exit codes as setup_kafka_messages.sh)
# Output: the classpath to run KafkaCheck with, as the only line on stdout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
REF="$("$ROOT/tests/tools/setup_kafka_messages.sh" "$@")"
DIR="$(dirname "$REF")"
CLASSES="$DIR/java-classes"
SRC="$ROOT/tests/java"
CP="$(cat "$DIR/classpath.txt")"

stamp="$CLASSES/KafkaCheck.class"
if [[ ! -f "$stamp" || -n "$(find "$SRC" -name '*.java' -newer "$stamp" -print -quit)" ]]; then
    tmp="$(mktemp -d "$DIR/java-classes.tmp.XXXXXX")"
    mapfile -d '' sources < <(find "$SRC" -name '*.java' -print0)
    javac -nowarn -encoding UTF-8 -d "$tmp" -cp "$CP" "${sources[@]}" 2>&1 | grep -v '^Note:' >&2 || true
    [[ -f "$tmp/KafkaCheck.class" ]] || { echo "setup_java_client_4x: javac failed" >&2; exit 1; }
    rm -rf "$CLASSES"
    mv "$tmp" "$CLASSES"
    echo "setup_java_client_4x: compiled KafkaCheck against kafka-clients 4.4.0 into $CLASSES" >&2
fi
echo "$CLASSES:$CP"
