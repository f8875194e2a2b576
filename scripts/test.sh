#!/usr/bin/env bash
# Runs every check and test of the workspace on a fresh machine: installs what is
# missing (cargo-nextest from crates.io; the tansu Kafka broker from PyPI through
# scripts/tansu.sh; Debian's prometheus and docker-compose packages through
# scripts/prometheus.sh and scripts/compose.sh),
# then formatting, clippy with -D warnings, all unit, property,
# SQL, CLI and Kafka tests, the documentation examples, and a short run of each
# fuzz target (scripts/fuzz.sh, which installs cargo-fuzz). The Kafka tests start
# tansu on free loopback ports; VIGIL_TEST_BROKERS=host:port runs them against
# another Kafka instead.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "==> installing cargo-nextest from crates.io"
    cargo install cargo-nextest --locked
fi

if [[ -z "${VIGIL_TEST_BROKERS:-}" ]]; then
    VIGIL_TANSU="$(bash scripts/tansu.sh)"
    export VIGIL_TANSU
    echo "==> test broker: $VIGIL_TANSU"
fi

VIGIL_PROMETHEUS_DIR="$(bash scripts/prometheus.sh)"
export VIGIL_PROMETHEUS_DIR
echo "==> prometheus and promtool: $VIGIL_PROMETHEUS_DIR"
VIGIL_COMPOSE_DIR="$(bash scripts/compose.sh)"
export VIGIL_COMPOSE_DIR
echo "==> docker-compose (validates docker/compose.yaml): $VIGIL_COMPOSE_DIR"

echo "==> rustfmt"
cargo fmt --all -- --check

echo "==> clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> documentation examples"
cargo test --workspace --doc --locked

echo "==> tests"
cargo nextest run --workspace --locked --no-fail-fast

echo "==> fuzzing"
bash scripts/fuzz.sh
