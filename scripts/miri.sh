#!/usr/bin/env bash
# Runs the library's unit tests, tests/api.rs and tests/waiting.rs under Miri
# (nightly), which checks every unsafe access, data races between threads and
# weak-memory effects on atomics, and reports leaks.
#
#   scripts/miri.sh                 # all of the above
#   scripts/miri.sh close           # only tests whose name contains "close"
#   MIRI_TARGETS="--lib|--test waiting" scripts/miri.sh   # chosen suites, "|"-separated (CI)
#
# Tests shrink their loops under cfg(miri). Miri keeps isolation on, so
# Instant/sleep use a virtual clock (timing bounds are skipped under miri).
# Exits 0 with "skipped: ..." when nightly Miri is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/nightly.sh
. scripts/nightly.sh
require_nightly miri rust-src

# -Zmiri-permissive-provenance: parking_lot_core keeps pointers in usize words.
# Many seeds would multiply the run time; one seed per run, override at will.
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-permissive-provenance}"
# tests/api.rs and tests/waiting.rs use no proptest; keep any future use small.
export PROPTEST_CASES="${PROPTEST_CASES:-4}"
export RUST_BACKTRACE=0

echo "miri: MIRIFLAGS=$MIRIFLAGS"
cargo +nightly miri setup
# --lib: the unit tests; the integration suites one by one so a failure names its file.
# Tests too long for Miri's interpreter are skipped: tests/api.rs
# `rocketmq_scenario*` loop 10 000 times. Set MIRI_SKIP="" to run them anyway.
MIRI_SKIP="${MIRI_SKIP-rocketmq_scenario}"
status=0
IFS='|' read -r -a targets <<<"${MIRI_TARGETS:---lib|--test api|--test waiting}"
for target in "${targets[@]}"; do
    skips=()
    for name in $MIRI_SKIP; do
        skips+=(--skip "$name")
    done
    echo "== cargo +nightly miri test $target -- ${skips[*]} $*"
    # shellcheck disable=SC2086
    if ! cargo +nightly miri test $target -- "${skips[@]}" "$@"; then
        echo "miri: FAILED in $target"
        status=1
    fi
done
if [ $status -eq 0 ]; then
    echo "miri: all passed"
fi
exit $status
