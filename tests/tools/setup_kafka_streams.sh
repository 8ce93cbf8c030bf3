#!/usr/bin/env bash
# Sets up Kafka Streams (org.apache.kafka:kafka-streams from Maven Central) for the integration tests,
# idempotently: mvn copies it and its runtime dependencies into .tools/streams-lib/ (local repository
# under .tools/maven/), then tests/streams/*.java and the stderr SLF4J binding are compiled into
# .tools/streams-classes/. As root, apt-get installs maven when mvn is missing.
# Usage: tests/tools/setup_kafka_streams.sh      Environment: PYKBROKER_TOOLS_DIR (default <repo>/.tools)
# Exit status: 0 when ready, 3 when java/javac/mvn are missing (nothing done), 1 on any other failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="${PYKBROKER_TOOLS_DIR:-$ROOT/.tools}"
VERSION=4.4.0
LIB="$TOOLS/streams-lib"
CLASSES="$TOOLS/streams-classes"
POM_DIR="$TOOLS/maven/kafka-streams-$VERSION"

say() { echo "setup_kafka_streams: $*"; }

if ! command -v mvn >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing maven with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends maven >/dev/null
fi
for tool in java javac mvn; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        say "$tool not found on PATH; nothing done"
        exit 3
    fi
done
mkdir -p "$TOOLS"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$TOOLS/.setup_kafka_streams.lock"
    flock 9
fi

if [[ ! -f "$LIB/.complete-$VERSION" ]]; then
    mkdir -p "$POM_DIR"
    cat > "$POM_DIR/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>pykbroker.tools</groupId><artifactId>streams-deps</artifactId><version>0</version>
  <dependencies><dependency>
    <groupId>org.apache.kafka</groupId><artifactId>kafka-streams</artifactId><version>$VERSION</version>
  </dependency></dependencies>
</project>
POM
    say "fetching kafka-streams $VERSION and its runtime dependencies with mvn"
    rm -rf "$LIB"
    mvn -q -B -f "$POM_DIR/pom.xml" -Dmaven.repo.local="$TOOLS/maven/repo" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$LIB"
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
