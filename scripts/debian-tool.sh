#!/usr/bin/env bash
# debian-tool.sh PACKAGE COMMAND...: prints the directory holding the first
# COMMAND, installing the Debian PACKAGE (apt-get, as root or through sudo) when
# any COMMAND is missing from PATH. A package's own service is kept from starting
# (the tests start what they need on loopback ports and stop it).
set -euo pipefail
package="$1"
shift

missing=""
for command in "$@"; do
    command -v "$command" >/dev/null 2>&1 || missing="yes"
done
if [[ -z "$missing" ]]; then
    dirname "$(command -v "$1")"
    exit 0
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
    SUDO="sudo"
fi

# Without a policy-rc.d, installing a package with a daemon would start it.
created_policy=""
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    created_policy="yes"
fi
cleanup() {
    if [[ -n "$created_policy" ]]; then
        $SUDO rm -f /usr/sbin/policy-rc.d
    fi
}
trap cleanup EXIT

echo "==> installing Debian's $package package" >&2
install() {
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "$package" >&2
}
if ! install; then
    $SUDO apt-get update -q >&2
    install
fi
dirname "$(command -v "$1")"
