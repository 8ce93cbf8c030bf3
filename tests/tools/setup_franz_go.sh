#!/usr/bin/env bash
# Builds tests/go/franzcheck (a franz-go + kadm driver for the compat suite) into .tools/bin/franzcheck,
# idempotently. The modules pinned in tests/go/franzcheck/go.mod and go.sum come from the Go module proxy
# into a module cache under .tools/go/ (GOPATH, GOMODCACHE, GOCACHE all there), so a fresh machine builds
# from nothing but the proxy; nothing third-party is vendored or committed.
#
# Usage: tests/tools/setup_franz_go.sh
# Environment: PYKBROKER_TOOLS_DIR (default <repo>/.tools)
# Exit status: 0 when ready, 3 when go is missing or older than go.mod asks (nothing done), 1 on any other
# failure. (Debian's golang-go is far older than franz-go's minimum, so there is no apt-get fallback.)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="${PYKBROKER_TOOLS_DIR:-$ROOT/.tools}"
SRC="$ROOT/tests/go/franzcheck"
BIN="$TOOLS/bin/franzcheck"

say() { echo "setup_franz_go: $*"; }
start=$(date +%s)

PATH="$PATH:/usr/local/go/bin"  # the official tarball's place, when a non-login shell lacks it
if ! command -v go >/dev/null 2>&1; then
    say "go not found on PATH; nothing done (install Go >= the version in $SRC/go.mod)"
    exit 3
fi
want="$(sed -n 's/^go //p' "$SRC/go.mod")"
have="$(go env GOVERSION)"; have="${have#go}"
if [[ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -1)" != "$want" ]]; then
    say "go $have is older than the $want that franz-go needs (go.mod); nothing done"
    exit 3
fi

mkdir -p "$TOOLS/bin" "$TOOLS/go"
exec 9>"$TOOLS/.setup_franz_go.lock"
flock 9  # concurrent runs (pytest workers, the compat runner) build once

up_to_date() {
    [[ -x "$BIN" ]] || return 1
    local f
    for f in "$SRC"/go.mod "$SRC"/go.sum "$SRC"/*.go; do [[ "$f" -nt "$BIN" ]] && return 1; done
    return 0
}
if up_to_date; then
    say "up to date: $BIN"
    exit 0
fi

export GOPATH="$TOOLS/go" GOMODCACHE="$TOOLS/go/mod" GOCACHE="$TOOLS/go/cache" GOFLAGS=-mod=readonly \
       GOTOOLCHAIN=local CGO_ENABLED=0
say "building with $(go version)"
cd "$SRC"
go build -trimpath -ldflags="-s -w" -o "$BIN.tmp" .
mv -f "$BIN.tmp" "$BIN"
say "built $BIN in $(( $(date +%s) - start )) s"
