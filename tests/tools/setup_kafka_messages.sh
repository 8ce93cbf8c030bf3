#!/usr/bin/env bash
# Sets up Kafka 4.x's protocol reference (kafka-clients 4.4.0) in the ignored .tools/ cache, idempotently:
#   1. resolves org.apache.kafka:kafka-clients:4.4.0 and kafka-server-common:4.4.0 (feature levels)
#      with their runtime dependencies from Maven Central with mvn into .tools/kafka-clients-4.4.0/m2
#      (classpath written to classpath.txt)
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
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
secs_since() { local d=$(( $(now_ms) - $1 )); printf "%d.%01d" $((d / 1000)) $(((d % 1000) / 100)); }
start=$(now_ms)
have_tools() { command -v mvn && command -v java && command -v javac; } >/dev/null 2>&1

if [[ "${1:-}" == "--install" ]] && ! have_tools; then
    if [[ "$(id -u)" != 0 ]]; then say "mvn/java/javac missing and not root: cannot apt-get install"; exit 3; fi
    say "installing maven and a headless JDK with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq maven default-jdk-headless >&2
fi
if ! have_tools; then
    say "mvn, java and javac are needed on PATH; nothing done (install them, or pass --install as root)"
    exit 3
fi

mkdir -p "$DIR"
# Serialize concurrent runs (several pytest sessions, generate.py and CI at once).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$DIR/.lock"
    flock 9
fi

# ---- 1: jars
classpath_ok() {
    [[ -s "$DIR/classpath.txt" ]] && grep -q kafka-server-common "$DIR/classpath.txt" || return 1
    local j
    IFS=: read -r -a jars < "$DIR/classpath.txt"
    for j in "${jars[@]}"; do [[ -s "$j" ]] || return 1; done
}
if ! classpath_ok; then
    cat > "$DIR/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.pykbroker</groupId><artifactId>kafka-messages</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-clients</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-server-common</artifactId><version>$KAFKA_VERSION</version></dependency>
  </dependencies>
</project>
POM
    say "resolving org.apache.kafka:kafka-clients:$KAFKA_VERSION from Maven Central with mvn"
    t0=$(now_ms)
    if ! (cd "$DIR" && mvn -q -B -Dstyle.color=never -Dmaven.repo.local="$DIR/m2" dependency:build-classpath \
            -Dmdep.outputFile="$DIR/classpath.tmp" -Dmdep.includeScope=runtime) >"$DIR/mvn.log" 2>&1; then
        tail -40 "$DIR/mvn.log" >&2
        say "mvn failed (is Maven Central reachable?); full log: $DIR/mvn.log"
        exit 1
    fi
    mv -f "$DIR/classpath.tmp" "$DIR/classpath.txt"
    say "resolved in $(secs_since "$t0") s"
fi
CP="$(cat "$DIR/classpath.txt")"
JAR="$(tr : '\n' < "$DIR/classpath.txt" | grep "/kafka-clients-$KAFKA_VERSION.jar$")"

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
