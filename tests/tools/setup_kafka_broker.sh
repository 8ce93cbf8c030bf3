#!/usr/bin/env bash
# Sets up the Apache Kafka broker (org.apache.kafka:kafka_2.13) as the reference broker, idempotently:
#   1. writes a tiny pom into <tools>/kafka-<version>/ naming the broker and a log4j2 backend for slf4j
#   2. resolves it from Maven Central (tests/tools/maven.sh) into <tools>/kafka-<version>/libs/
#      (local Maven repository: <tools>/m2-repository, so nothing outside the tools dir is touched)
#   3. writes <tools>/kafka-<version>/READY (the version), which later runs (and compat/reference.py) check
# Versions are tried in order (4.4.0, then 4.3.1, then 4.1.1, each once) unless KAFKA_VERSION names one.
# Nothing from Kafka is committed: all of it lives in the ignored tools dir.
#
# Usage: tests/tools/setup_kafka_broker.sh [--install-deps]
#   --install-deps   apt-get install a headless JDK and/or maven when missing (needs root)
# Environment: PYKBROKER_TOOLS_DIR (default <repo>/.tools), KAFKA_VERSION (one version, no fallback)
# Output: the last line on stdout is the libs directory.
# Exit status: 0 when ready, 3 when java is missing (nothing done), 1 on any other failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="${PYKBROKER_TOOLS_DIR:-$ROOT/.tools}"
VERSIONS=(${KAFKA_VERSION:-4.4.0 4.3.1 4.1.1})
LOG4J_VERSION=2.25.3          # log4j2 backend; Kafka 4 logs through slf4j 1.7 -> log4j-slf4j-impl

say() { echo "setup_kafka_broker: $*" >&2; }
source "$ROOT/tests/tools/maven.sh"
start=$(now_ms)

if [[ "${1:-}" == "--install-deps" ]]; then
    maven_tools 1 java mvn || exit $?
fi
if ! command -v java >/dev/null 2>&1; then
    say "java not found on PATH; nothing done (install a JDK >= 17, or pass --install-deps as root)"
    exit 3
fi
maven_lock "setup_kafka_broker"

for v in "${VERSIONS[@]}"; do
    if [[ -s "$TOOLS/kafka-$v/READY" && -n "$(ls "$TOOLS/kafka-$v/libs/" 2>/dev/null)" ]]; then
        say "Kafka $v already set up in $TOOLS/kafka-$v/libs"
        echo "$TOOLS/kafka-$v/libs"
        exit 0
    fi
done

if ! command -v mvn >/dev/null 2>&1; then
    say "mvn not found on PATH (install maven, or pass --install-deps as root)"
    exit 1
fi

for v in "${VERSIONS[@]}"; do
    dir="$TOOLS/kafka-$v"
    say "resolving org.apache.kafka:kafka_2.13:$v and its runtime dependencies from Maven Central"
    maven_pom "$dir/pom.xml" "org.apache.kafka:kafka_2.13:$v" "org.apache.logging.log4j:log4j-core:$LOG4J_VERSION" \
        "org.apache.logging.log4j:log4j-slf4j-impl:$LOG4J_VERSION"
    if maven_copy "$dir/pom.xml" "$dir/libs"; then
        echo "$v" >"$dir/READY"
        say "ready in $(secs_since "$start") s; run with: python -m compat.reference"
        echo "$dir/libs"
        exit 0
    fi
    say "Kafka $v did not resolve"
done
say "no Kafka version resolved (tried ${VERSIONS[*]})"
exit 1
