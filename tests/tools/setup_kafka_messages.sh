#!/usr/bin/env bash
# Sets up Kafka 4.x's protocol reference (kafka-clients 4.4.0) in the ignored .tools/ cache, idempotently:
#   1. resolves org.apache.kafka:kafka-clients:4.4.0 and kafka-server-common:4.4.0 (feature levels)
#      with their runtime dependencies from Maven Central with mvn (tests/tools/maven.sh) into
#      .tools/kafka-clients-4.4.0/libs (classpath written to classpath.txt)
#   2. extracts the jar's common/message/*.json into .tools/kafka-clients-4.4.0/kafka-protocol/message/
#   3. compiles tools/kafka_protocol/DumpProtocol.java and writes errors.tsv, api-keys.tsv and
#      features.tsv next to message/ (the Errors, ApiKeys, MetadataVersion and Feature enums are code)
# The result has the layout of ../shared/kafka-protocol (3.9.1). Steps whose output exists are skipped.
# Nothing here is committed: the jar and Kafka's JSON files stay in .tools/.
#
# Usage: tests/tools/setup_kafka_messages.sh [--install]
#   --install   apt-get install maven (and a JDK) when mvn/javac are missing (needs root)
# Environment: PYKBROKER_TOOLS_DIR (default <repo>/.tools)
# Output: progress on stderr; the reference folder's path as the only line on stdout.
# Exit status: 0 when ready, 3 when mvn/java/javac are missing (nothing done), 1 on any other failure.
set -euo pipefail

KAFKA_VERSION=4.4.0
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="${PYKBROKER_TOOLS_DIR:-$ROOT/.tools}"
DIR="$TOOLS/kafka-clients-$KAFKA_VERSION"
REF="$DIR/kafka-protocol"
DUMPER="$ROOT/tools/kafka_protocol/DumpProtocol.java"

say() { echo "setup_kafka_messages: $*" >&2; }
source "$ROOT/tests/tools/maven.sh"
start=$(now_ms)

maven_tools "$([[ "${1:-}" == "--install" ]] && echo 1 || echo 0)" mvn java javac || exit $?
mkdir -p "$DIR"
maven_lock "setup_kafka_messages"

# ---- 1: jars
classpath_ok() {
    [[ -s "$DIR/classpath.txt" ]] && grep -q "$DIR/libs/kafka-server-common" "$DIR/classpath.txt" || return 1
    local j
    IFS=: read -r -a jars < "$DIR/classpath.txt"
    for j in "${jars[@]}"; do [[ -s "$j" ]] || return 1; done
}
if ! classpath_ok; then
    say "resolving org.apache.kafka:kafka-clients:$KAFKA_VERSION from Maven Central with mvn"
    maven_pom "$DIR/pom.xml" "org.apache.kafka:kafka-clients:$KAFKA_VERSION" \
        "org.apache.kafka:kafka-server-common:$KAFKA_VERSION"
    maven_copy "$DIR/pom.xml" "$DIR/libs" || exit 1
    rm -rf "$DIR/m2"  # the per-script repository of earlier versions of this script
    ls "$DIR"/libs/*.jar | paste -sd: > "$DIR/classpath.txt"
fi
CP="$(cat "$DIR/classpath.txt")"
JAR="$DIR/libs/kafka-clients-$KAFKA_VERSION.jar"

# ---- 2: message definitions
# The stamp's mtime is the extraction time (the files keep the jar's, which is older than the download).
if [[ ! -f "$REF/message/.extracted" || "$JAR" -nt "$REF/message/.extracted" ]]; then
    tmp="$(mktemp -d "$DIR/extract.XXXXXX")"
    (cd "$tmp" && jar xf "$JAR" common/message) 2>/dev/null || (cd "$tmp" && unzip -q "$JAR" 'common/message/*.json')
    mkdir -p "$REF"
    rm -rf "$REF/message"
    mkdir -p "$REF/message"
    mv "$tmp"/common/message/*.json "$REF/message/"
    rm -rf "$tmp"
    touch "$REF/message/.extracted"
    say "extracted $(ls "$REF/message" | wc -l) message definitions into $REF/message"
fi

# ---- 3: facts held as code (error codes, API keys)
CLASSES="$DIR/classes"
if [[ ! -s "$REF/features.tsv" || "$DUMPER" -nt "$REF/features.tsv" || "$JAR" -nt "$REF/features.tsv" ]]; then
    mkdir -p "$CLASSES"
    javac -nowarn -d "$CLASSES" -cp "$CP" "$DUMPER"
    for what in api-keys errors features; do
        java -cp "$CLASSES:$CP" DumpProtocol "$what" > "$REF/$what.tmp" 2>"$DIR/dump.log"
        mv -f "$REF/$what.tmp" "$REF/$what.tsv"
    done
    say "wrote $REF/errors.tsv ($(($(wc -l < "$REF/errors.tsv") - 1)) codes), api-keys.tsv and features.tsv"
fi

say "ready in $(secs_since "$start") s"
echo "$REF"
