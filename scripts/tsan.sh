#!/usr/bin/env bash
# Runs the library's unit tests, tests/api.rs, tests/waiting.rs and
# tests/interop.rs under ThreadSanitizer (nightly, std rebuilt with
# -Zsanitizer=thread so that std's own synchronisation is instrumented).
#
#   scripts/tsan.sh                 # all of the above
#   scripts/tsan.sh fifo            # only tests whose name contains "fifo"
#   TSAN_TARGETS="--lib|--test waiting" scripts/tsan.sh   # chosen suites, "|"-separated (CI)
#
# Builds into target/tsan so the normal build is left alone.
# Exits 0 with "skipped: ..." when nightly rust-src is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/nightly.sh
. scripts/nightly.sh
require_nightly rust-src

target=$(rustc +nightly -vV | sed -n 's/^host: //p')
case "$target" in
    x86_64-unknown-linux-gnu | aarch64-unknown-linux-gnu) ;;
    *) skip "ThreadSanitizer is not set up here for host $target" ;;
esac

export RUSTFLAGS="${RUSTFLAGS:-} -Zsanitizer=thread -Cdebug-assertions=on"
export RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -Zsanitizer=thread"
# halt_on_error: the first report fails the run; the test process exit code says so.
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/tsan}"
export RUST_BACKTRACE=0

echo "tsan: target $target, RUSTFLAGS=$RUSTFLAGS, TSAN_OPTIONS=$TSAN_OPTIONS"
status=0
IFS='|' read -r -a targets <<<"${TSAN_TARGETS:---lib|--test api|--test waiting|--test interop}"
for t in "${targets[@]}"; do
    echo "== cargo +nightly test -Zbuild-std --target $target $t $*"
    # shellcheck disable=SC2086
    if ! cargo +nightly test -Zbuild-std --target "$target" $t -- "$@"; then
        echo "tsan: FAILED in $t"
        status=1
    fi
done
exit $status
