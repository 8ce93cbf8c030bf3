#!/usr/bin/env bash
# Sets up Kafka Streams (org.apache.kafka:kafka-streams from Maven Central) for the integration tests,
# idempotently: mvn copies it and its runtime dependencies into .tools/streams-lib/ (tests/tools/maven.sh,
# the local repository shared with the other set-up scripts), then tests/streams/*.java and the stderr SLF4J binding are compiled into
# .tools/streams-classes/. As root, apt-get installs maven when mvn is missing.
# Usage: tests/tools/setup_kafka_streams.sh      Environment: PYKBROKER_TOOLS_DIR (default <repo>/.tools)
# Exit status: 0 when ready, 3 when java/javac/mvn are missing (nothing done), 1 on any other failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="${PYKBROKER_TOOLS_DIR:-$ROOT/.tools}"
VERSION=4.4.0
LIB="$TOOLS/streams-lib"
CLASSES="$TOOLS/streams-classes"
POM_DIR="$TOOLS/streams-pom"

say() { echo "setup_kafka_streams: $*"; }
source "$ROOT/tests/tools/maven.sh"

maven_tools 1 java javac mvn || exit $?
maven_lock "setup_kafka_streams"

if [[ ! -f "$LIB/.complete-$VERSION" ]]; then
    say "fetching kafka-streams $VERSION and its runtime dependencies with mvn"
    maven_pom "$POM_DIR/pom.xml" "org.apache.kafka:kafka-streams:$VERSION"
    maven_copy "$POM_DIR/pom.xml" "$LIB" || exit 1
    touch "$LIB/.complete-$VERSION"
fi

SOURCES=("$ROOT"/tests/streams/*.java "$ROOT"/tests/java/org/slf4j/impl/*.java)
stamp="$CLASSES/.sources"
if [[ ! -f "$stamp" ]] || [[ -n "$(find "${SOURCES[@]}" -newer "$stamp" 2>/dev/null)" ]]; then
    say "compiling ${#SOURCES[@]} source file(s)"
    rm -rf "$CLASSES"
    mkdir -p "$CLASSES"
    javac -nowarn -d "$CLASSES" -cp "$LIB/*" "${SOURCES[@]}"
    touch "$stamp"
fi
say "ready: java -cp '$CLASSES:$LIB/*' WordCountApp ..."
