#!/usr/bin/env bash
# Proves the minimum supported Rust version (`rust-version` in Cargo.toml) by
# building with that toolchain the library with no features and with all of
# them, then type-checking every test with all features (`cargo check`: a
# full build of the test dependencies took minutes for nothing more to
# learn; benches and examples are left to the current toolchain: what they
# add is their own dependencies, and time).
#
#   scripts/msrv.sh
#
# The toolchain is Debian's `rustc-web` and `cargo-web` packages, which
# install /usr/bin/rustc and /usr/bin/cargo; they are installed (as root, with
# apt-get) when missing. Where they cannot be had, this says so and exits 0.
# rustup's proxies come first on PATH, so the packaged binaries are called by
# path, with RUSTC set. The build has a target directory of its own
# (target/msrv), and uses Cargo.lock as it is; should a locked crate need a
# newer Rust, the build runs on a copy of the tree whose lockfile is resolved
# for the MSRV (CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback), and
# Cargo.lock itself is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE_VERSION="${MSRV_PACKAGE_VERSION:-1.85.0+dfsg3-1~deb12u3}"
msrv=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)
[ -n "$msrv" ] || { echo "msrv: no rust-version in Cargo.toml" >&2; exit 1; }

have_toolchain() {
    /usr/bin/rustc --version 2>/dev/null | grep -q "^rustc $msrv[. ]" &&
        /usr/bin/cargo --version 2>/dev/null | grep -q "^cargo $msrv[. ]"
}

if ! have_toolchain && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "msrv: installing rustc-web and cargo-web $PACKAGE_VERSION"
    packages=("rustc-web=$PACKAGE_VERSION" "cargo-web=$PACKAGE_VERSION")
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "${packages[@]}" >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null 2>&1 &&
            apt-get install -y -qq "${packages[@]}" >/dev/null 2>&1; } || true
fi
if ! have_toolchain; then
    echo "msrv: SKIPPED: Rust $msrv not available (Debian's rustc-web/cargo-web $PACKAGE_VERSION could not be installed)"
    exit 0
fi

root=$PWD
export RUSTC=/usr/bin/rustc
export CARGO_TARGET_DIR="$root/target/msrv"
export CARGO_TERM_COLOR=never
log="$CARGO_TARGET_DIR/build.log"
mkdir -p "$CARGO_TARGET_DIR"

builds() {
    /usr/bin/cargo build --lib --no-default-features &&
        /usr/bin/cargo build --lib --all-features &&
        /usr/bin/cargo check --tests --all-features
}

where="with Cargo.lock"
if ! builds >"$log" 2>&1; then
    if ! grep -q "is not supported by the following package" "$log"; then
        cat "$log" >&2
        echo "msrv: FAILED: Rust $msrv cannot build multisem" >&2
        exit 1
    fi
    # A locked crate needs a newer Rust: resolve a copy of the lockfile for
    # the MSRV, in a copy of the tree.
    copy=$(mktemp -d)
    trap 'rm -rf "$copy"' EXIT
    git ls-files -z | xargs -0 cp --parents -t "$copy"
    cd "$copy"
    CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback /usr/bin/cargo update >>"$log" 2>&1
    where="with a lockfile resolved for Rust $msrv"
    if ! builds >>"$log" 2>&1; then
        cat "$log" >&2
        echo "msrv: FAILED: Rust $msrv cannot build multisem" >&2
        exit 1
    fi
fi
echo "msrv: OK: $(/usr/bin/rustc --version | cut -d' ' -f1-2) builds the library (no features, all features) and type-checks every test (all features), $where"
