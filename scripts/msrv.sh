#!/usr/bin/env bash
# Builds the kernel crate (the only crate that declares `rust-version`, 1.85) with Debian's
# rustc-web/cargo-web 1.85, which .ci/install.sh unpacks into /opt/rust-1.85 (beside the 1.96
# toolchain the other scripts use). Library only: the dev-dependency proptest 1.12 requires
# Rust 1.88, so the test suite cannot build with 1.85, and the harness uses
# `u64::is_multiple_of` (Rust 1.87) and declares no rust-version.
set -euo pipefail
cd "$(dirname "$0")/.."

root=/opt/rust-1.85/usr
test -x "$root/bin/rustc" || { echo "msrv: $root/bin/rustc missing (run .ci/install.sh)" >&2; exit 1; }
export LD_LIBRARY_PATH="$root/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export RUSTC="$root/bin/rustc" RUSTDOC="$root/bin/rustdoc"
unset RUSTFLAGS RUSTC_BOOTSTRAP
"$RUSTC" --version
declared=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
case "$("$RUSTC" --version)" in
  "rustc $declared."*) ;;
  *) echo "msrv: the workspace declares rust-version $declared, the toolchain is not it" >&2; exit 1 ;;
esac
cargo=("$root/bin/cargo")
"${cargo[@]}" build --locked --target-dir target/msrv -p descent-kernels --lib
"${cargo[@]}" build --locked --target-dir target/msrv -p descent-kernels --lib --no-default-features
echo "msrv: descent-kernels builds with $("$RUSTC" --version)"
