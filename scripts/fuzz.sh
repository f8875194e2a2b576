#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ (the JSON decoders and the SQL front end)
# and runs each from its committed seed corpus: by default a fixed number of
# inputs from a fixed seed (about 20 s each here), so that CI does not pass or
# fail by luck; with VIGIL_FUZZ_SECONDS=N, for N seconds from a random seed.
# Installs cargo-fuzz from crates.io if missing. A crash, a failed assertion, a
# leak or a timeout fails the script and leaves the input in fuzz/artifacts/.
#
# Run one target for longer by hand:
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --dev --fuzz-dir fuzz json_rows -- -max_total_time=600
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${VIGIL_FUZZ_SECONDS:-}"

# Inputs per target in the default, repeatable run.
runs_of() {
    case "$1" in
        json_rows) echo 15000 ;;
        pipeline_sql) echo 1500 ;;
        *) echo 50000 ;;
    esac
}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked
fi

# cargo fuzz instruments with nightly flags (-Zsanitizer=address); the machine's
# stable toolchain takes them with RUSTC_BOOTSTRAP, and ships the ASan runtime.
export RUSTC_BOOTSTRAP=1
cd fuzz
cargo fuzz build --dev
for target in $(cargo fuzz list); do
    # New inputs go to a scratch corpus; the committed seeds stay as they are.
    scratch="$(mktemp -d)"
    if [[ -n "$seconds" ]]; then
        budget=(-max_total_time="$seconds")
        echo "==> fuzzing $target for ${seconds}s"
    else
        budget=(-seed=20261124 -runs="$(runs_of "$target")")
        echo "==> fuzzing $target: $(runs_of "$target") inputs from seed 20261124"
    fi
    log="$scratch.log"
    status=0
    cargo fuzz run --dev "$target" "$scratch" "corpus/$target" -- \
        "${budget[@]}" -max_len=8192 -timeout=10 -rss_limit_mb=4096 \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E "^(stat::number_of_executed_units|stat::new_units_added|Done )" "$log" || true
    if [[ "$status" != 0 ]]; then
        tail -60 "$log" >&2
    fi
    rm -f "$log"
    rm -rf "$scratch"
    if [[ "$status" != 0 ]]; then
        echo "fuzz target $target failed (exit $status); the input is in fuzz/artifacts/$target" >&2
        exit "$status"
    fi
done
