#!/usr/bin/env bash
# Prints the directory holding `prometheus` and `promtool`, installing Debian's
# `prometheus` package (apt-get, as root or through sudo) when they are not on
# PATH. The package's own service is kept from starting: the tests start their
# own server on a free loopback port and stop it.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    dirname "$(command -v promtool)"
    exit 0
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
    SUDO="sudo"
fi

# Without a policy-rc.d, installing the package would start its daemon.
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

echo "==> installing Debian's prometheus package" >&2
install() {
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends prometheus >&2
}
if ! install; then
    $SUDO apt-get update -q >&2
    install
fi
dirname "$(command -v promtool)"
