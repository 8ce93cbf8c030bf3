#!/usr/bin/env bash
# Installs kafkajs (the pure-JavaScript Kafka client) from the npm registry into the ignored cache
# .tools/node/ for tests/js/*.mjs, idempotently. Needs node and npm (as root, apt-get installs them
# when missing).
# Usage: tests/tools/setup_kafkajs.sh        Environment: PYKBROKER_TOOLS_DIR (default <repo>/.tools)
# Exit status: 0 when ready, 3 when node/npm are missing (nothing done), 1 on any other failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="${PYKBROKER_TOOLS_DIR:-$ROOT/.tools}"
PREFIX="$TOOLS/node"
VERSION=2.2.4

say() { echo "setup_kafkajs: $*"; }

if ! { command -v node && command -v npm; } >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing nodejs and npm with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if ! { command -v node && command -v npm; } >/dev/null 2>&1; then
    say "node and/or npm not found on PATH; nothing done"
    exit 3
fi
mkdir -p "$PREFIX"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$TOOLS/.setup_kafkajs.lock"
    flock 9
fi
if [[ -f "$PREFIX/node_modules/kafkajs/package.json" ]] \
        && grep -q "\"version\": \"$VERSION\"" "$PREFIX/node_modules/kafkajs/package.json"; then
    say "kafkajs $VERSION already installed in $PREFIX"
    exit 0
fi
say "installing kafkajs $VERSION into $PREFIX"
npm install --silent --no-audit --no-fund --prefix "$PREFIX" "kafkajs@$VERSION" >/dev/null
say "ready"
