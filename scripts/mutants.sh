#!/usr/bin/env bash
# Mutation testing of the accounting core with cargo-mutants: every surviving
# mutant is a change to the code that no test notices. Not in CI: on 2 cores a
# mutant costs about 15 s (an incremental build, then the library's unit tests
# and tests/, whose stress tests run for a few seconds each), so the core's
# ~800 mutants take hours. Run it after a change to the files below, on those
# files.
#
#   scripts/mutants.sh                       # every file of the core
#   scripts/mutants.sh src/counters/held.rs  # some of them
#   MUTANTS_JOBS=2 scripts/mutants.sh        # two builds at once (a copy each)
#   MUTANTS_ARGS="--re held" scripts/mutants.sh  # more cargo-mutants options
#   scripts/mutants.sh src/adaptive/*.rs src/adaptive/*/*.rs  # the adaptive module: only its
#                                            # tests run (~4 s a mutant, 20 min)
#   MUTANTS_IN_PLACE=1 scripts/mutants.sh F  # mutate this tree, one at a time:
#                                            # no copy, no rebuild from scratch;
#                                            # keep the tree to itself meanwhile
#
# Results: target/mutants/mutants.out/{caught,missed,timeout,unviable}.txt.
# A mutant that survives is either a missing test (write one that asserts what
# a user relies on) or cannot change behaviour: then it is listed, with why,
# in scripts/mutants-equivalent.md.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-mutants >/dev/null || cargo install --locked cargo-mutants

files=("$@")
if [ ${#files[@]} -eq 0 ]; then
    files=(
        src/counters/mod.rs
        src/counters/packed.rs
        src/counters/tiered.rs
        src/counters/reserve.rs
        src/counters/held.rs
        src/permit.rs
        src/waiters.rs
        src/semaphore.rs
        src/semaphore/resize.rs
    )
fi

out_dir="${MUTANTS_OUT:-target/mutants}"
mkdir -p "$out_dir"
# The library's unit tests and tests/; the doctests would cost a build per
# example and the loom models live in a crate of their own. The adaptive
# module is built on the core's public API, so its own suites judge it.
# With the `futures` feature, so that the futures' `FusedFuture` (code of
# acquire.rs under that feature) is built and tests/fused.rs runs; the
# integrations take MUTANTS_ARGS="--all-features".
tests=(--cargo-test-arg=--lib --cargo-test-arg=--tests --features=futures)
adaptive_only=1
for f in "${files[@]}"; do [[ "$f" == src/adaptive/* ]] || adaptive_only=; done
if [ -n "$adaptive_only" ]; then
    # tests/memory.rs pins what the filters reserve ahead (a fraction of a
    # second); tests/fused.rs, the tracked futures' `FusedFuture` (feature
    # `futures`).
    tests=(--cargo-test-arg=--lib --cargo-test-arg=--test=adaptive --cargo-test-arg=--test=adaptive_sim
        --cargo-test-arg=--test=memory --cargo-test-arg=--test=fused --features=futures)
fi
args=(
    "${tests[@]}"
    # The whole run takes 15-30 s unmutated; a mutant that hangs a test is
    # caught by the test's watchdog or by this (each hang costs all of it).
    --timeout "${MUTANTS_TIMEOUT:-90}"
    --output "$out_dir"
)
for f in "${files[@]}"; do args+=(--file "$f"); done
# Extra options for cargo-mutants, e.g. MUTANTS_ARGS="--baseline skip".
read -r -a extra <<<"${MUTANTS_ARGS:-}"
args+=("${extra[@]}")
if [ -n "${MUTANTS_IN_PLACE:-}" ]; then
    args+=(--in-place)
else
    args+=(--jobs "${MUTANTS_JOBS:-1}")
fi

# The fixed-time stress tests (tests/peaks.rs, tests/shrink.rs) run a
# quarter of their time: each still races its threads for a second or so.
export MULTISEM_STRESS_SCALE="${MULTISEM_STRESS_SCALE:-0.25}"
status=0
cargo mutants "${args[@]}" || status=$?
out="$out_dir/mutants.out"
count() { if [ -f "$out/$1.txt" ]; then grep -c . "$out/$1.txt" || true; else echo 0; fi; }
caught=$(count caught) missed=$(count missed) timeout=$(count timeout) unviable=$(count unviable)
viable=$((caught + missed + timeout))
# A timeout is a hang the mutant caused: the tests noticed it too.
echo "mutants: caught $caught, missed $missed, timed out $timeout, unviable $unviable;" \
    "score $((caught + timeout))/$viable"
exit $status
