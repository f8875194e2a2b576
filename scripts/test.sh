#!/usr/bin/env bash
# Runs every check and test of the workspace on a fresh machine: installs what is
# missing (cargo-nextest, from crates.io), then formatting, clippy with -D warnings,
# all unit/property/SQL/CLI tests, and the documentation examples.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "==> installing cargo-nextest from crates.io"
    cargo install cargo-nextest --locked
fi

echo "==> rustfmt"
cargo fmt --all -- --check

echo "==> clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> documentation examples"
cargo test --workspace --doc --locked

echo "==> tests"
cargo nextest run --workspace --locked --no-fail-fast
