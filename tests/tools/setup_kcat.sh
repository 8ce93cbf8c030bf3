#!/usr/bin/env bash
# Installs Debian's kcat (the librdkafka command-line client) when it is not already on PATH.
# Idempotent: a no-op when kcat is present. Needs root (or sudo) and apt-get for the install.
# Exit status: 0 when kcat is available afterwards, 3 when it cannot be installed here, 1 on install failure.
set -euo pipefail

say() { echo "setup_kcat: $*"; }

show_version() {
    # `kcat -V` prints a banner and "Version X (features..., librdkafka Y builtin.features=...)".
    say "$(kcat -V 2>&1 | grep -m1 '^Version' | sed 's/ builtin.features=.*//') at $(command -v kcat)"
}

if command -v kcat >/dev/null 2>&1; then
    say "already installed"
    show_version
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    say "kcat not found and apt-get is not available; install kcat by other means"
    exit 3
fi

SUDO=""
if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        say "kcat not found and not running as root (nor passwordless sudo); run: apt-get install -y kcat"
        exit 3
    fi
fi

export DEBIAN_FRONTEND=noninteractive
start=$(date +%s)
updated=0
# Skip `apt-get update` when the package lists already know kcat (e.g. a previous run updated them).
if ! apt-cache show kcat >/dev/null 2>&1; then
    say "apt-get update"
    $SUDO apt-get update -qq
    updated=1
fi
say "apt-get install -y kcat"
if ! $SUDO apt-get install -y -qq --no-install-recommends kcat >/dev/null; then
    (( updated )) && exit 1
    say "install failed with the current package lists; apt-get update and retry"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends kcat >/dev/null
fi
say "installed in $(( $(date +%s) - start )) s"
show_version
