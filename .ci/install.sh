#!/usr/bin/env bash
# Installs what the project's checks need on a fresh Debian machine (run as root). Idempotent:
# packages already present are not fetched again.
#
# - rustc-web, cargo-web, rust-web-src: Debian's Rust 1.96 with its library source, which
#   -Zbuild-std compiles for targets rustup cannot provide here (no_std thumb builds, aarch64 std).
# - qemu-user, gcc-aarch64-linux-gnu, libc6-dev-arm64-cross: run the aarch64 (NEON) test suite
#   under user-mode emulation (linker and C runtime for the target).
# - rust-web-llvm, lld-22: rust-lld (a symlink to lld-22, which links every embedded target) and
#   llvm-{size,nm,objdump}-22; qemu-system-arm (Cortex-M and aarch64 boards) and qemu-system-misc
#   (riscv32 virt): scripts/embedded.sh runs the test firmware on them.
# - nodejs, only if no `node` is on PATH: runs the wasm32 test firmware (scripts/wasm.sh).
# The host toolchain (rustup's stable with rustfmt and clippy) comes with the machine.
set -euo pipefail

packages=(rustc-web cargo-web rust-web-src qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross
  rust-web-llvm lld-22 qemu-system-arm qemu-system-misc)
command -v node >/dev/null || packages+=(nodejs)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

for tool in cargo rustfmt cargo-clippy /usr/bin/rustc qemu-aarch64 aarch64-linux-gnu-gcc rust-lld \
  llvm-size-22 llvm-nm-22 llvm-objdump-22 qemu-system-arm qemu-system-aarch64 qemu-system-riscv32 \
  node; do
  command -v "$tool" >/dev/null || { echo "missing after install: $tool" >&2; exit 1; }
done
test -d /usr/lib/rustlib/src/rust/library || { echo "missing: rust-web-src library source" >&2; exit 1; }
