# Sourced by miri.sh and tsan.sh: both run on nightly and skip cleanly
# (exit 0, saying why) where it or a component they need is missing.

skip() {
    echo "skipped: $*"
    exit 0
}

# require_nightly COMPONENT...: skips unless nightly has every COMPONENT.
require_nightly() {
    command -v rustup >/dev/null 2>&1 || skip "rustup is not installed"
    local installed component
    installed=$(rustup +nightly component list --installed 2>/dev/null) ||
        skip "no nightly toolchain (rustup toolchain install nightly --component $*)"
    for component in "$@"; do
        grep -q "^$component" <<<"$installed" ||
            skip "the nightly $component component is not installed (rustup component add --toolchain nightly $*)"
    done
}
