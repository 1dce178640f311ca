#!/usr/bin/env bash
# Runs every fuzz target (tests/fuzz/targets.rs) for a bounded time.
#
#   FUZZ_SECS=60          seconds per target
#   FUZZ_TARGETS="a b"    a subset (default: all eight)
#   FUZZ_ENGINE=auto      auto | libfuzzer | random
#
# libfuzzer: coverage-guided, through cargo-bolero on a nightly toolchain
# (installed from crates.io if missing); the working corpus and any crash
# inputs stay under fuzz/target/. random: bolero's random inputs on the
# default (stable) toolchain inside `cargo test`, for the same time. auto
# picks libfuzzer when a nightly toolchain is installed. Exits non-zero if
# any target failed, naming the inputs that made it fail.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${FUZZ_SECS:-60}
targets=${FUZZ_TARGETS:-"envelope_open card_verify agreement_toml scenario_toml record_validate identifier_normalize seal_open request_steps"}
engine=${FUZZ_ENGINE:-auto}

have_nightly() {
    command -v rustup >/dev/null 2>&1 && rustup run nightly rustc --version >/dev/null 2>&1
}

if [ "$engine" = auto ]; then
    if have_nightly; then engine=libfuzzer; else engine=random; fi
fi

case "$engine" in
libfuzzer)
    if ! have_nightly; then
        echo "fuzz: FUZZ_ENGINE=libfuzzer needs a nightly toolchain (rustup toolchain list)" >&2
        exit 2
    fi
    if ! cargo bolero --version >/dev/null 2>&1; then
        echo "fuzz: installing cargo-bolero from crates.io"
        # Without default features it needs no system libraries (those are
        # for honggfuzz); libFuzzer is built into the test binary by bolero.
        cargo install --locked --version 0.13 cargo-bolero --no-default-features
    fi
    failed=()
    for t in $targets; do
        corpus=fuzz/target/corpus/$t
        crashes=fuzz/target/crashes/$t
        mkdir -p "$corpus" "$crashes"
        # Start from the kept inputs (regressions included).
        if [ -d "tests/fuzz/corpus/$t" ]; then
            cp -n tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
        fi
        echo "fuzz: $t under libFuzzer for ${secs}s"
        # -len_control=0: full-length inputs from the start; the seeded
        # targets read their edits from the input, and the slow ones would
        # otherwise spend the whole run on a few bytes.
        if ! (cd fuzz && cargo +nightly bolero test "$t" -T "${secs}s" \
            --corpus-dir "../$corpus" --crashes-dir "../$crashes" --engine-args=-len_control=0); then
            failed+=("$t")
        fi
    done
    if [ ${#failed[@]} -gt 0 ]; then
        echo "fuzz: FAILED: ${failed[*]}" >&2
        for t in "${failed[@]}"; do
            ls -1 fuzz/target/crashes/"$t" 2>/dev/null | sed "s|^|  fuzz/target/crashes/$t/|" >&2 || true
        done
        echo "fuzz: fix the library, then keep each input as tests/fuzz/corpus/<target>/<what-it-shows> (fuzz/README.md)" >&2
        exit 1
    fi
    ;;
random)
    echo "fuzz: random inputs on $(rustc --version) for ${secs}s per target"
    # bolero's test engine: BOLERO_RANDOM_TEST_TIME_MS bounds each target.
    # shellcheck disable=SC2086 # one filter per target
    BOLERO_RANDOM_TEST_TIME_MS=$((secs * 1000)) cargo test --test fuzz -- --exact --nocapture $targets
    ;;
*)
    echo "fuzz: FUZZ_ENGINE must be auto, libfuzzer or random" >&2
    exit 2
    ;;
esac
echo "fuzz: every target ran ${secs}s without a failure"
