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

# OpenMPI (mpirun, mpicc, libmpi) for the descent-mpi workspace member; its `mpi` crate generates
# the bindings with bindgen, which needs clang and libclang-dev. Every `cargo build/clippy/test
# --workspace` compiles that crate, so this runs before any cargo step of .ci/run (scripts/mpi.sh
# runs the processes).
mpi_missing=()
for p in openmpi-bin libopenmpi-dev clang libclang-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || mpi_missing+=("$p")
done
if ((${#mpi_missing[@]})); then
  echo "installing: ${mpi_missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${mpi_missing[@]}"
fi
for tool in mpirun mpicc; do
  command -v "$tool" >/dev/null || { echo "missing after install: $tool" >&2; exit 1; }
done

# The declared MSRV toolchain (scripts/msrv.sh): Debian bookworm's rustc-web/cargo-web 1.85, the
# version the bookworm-security 1.96 update superseded; fetched by exact version with
# `apt-get download` and unpacked into /opt/rust-1.85 (not installed as packages, so the 1.96
# packages above stay installed). Its shared libraries come from Debian's packages.
if [[ ! -x /opt/rust-1.85/usr/bin/cargo ]]; then
  msrv_deps=(libllvm19 libhttp-parser2.9 libpcre3 libssh2-1 libcurl4 libsqlite3-0)
  msrv_missing=()
  for p in "${msrv_deps[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || msrv_missing+=("$p"); done
  if ((${#msrv_missing[@]})); then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${msrv_missing[@]}"
  fi
  v=$(apt-cache madison rustc-web | awk -F'|' '$2 ~ /^ *1\.85\./ {gsub(/ /, "", $2); print $2; exit}')
  [[ -n "$v" ]] || { apt-get update -q; v=$(apt-cache madison rustc-web | awk -F'|' '$2 ~ /^ *1\.85\./ {gsub(/ /, "", $2); print $2; exit}'); }
  [[ -n "$v" ]] || { echo "no rustc-web 1.85 in the Debian archive" >&2; exit 1; }
  dl=$(mktemp -d)
  chmod 777 "$dl"
  (cd "$dl" && apt-get download -q "rustc-web=$v" "cargo-web=$v" "libstd-rust-web-1.85=$v" "libstd-rust-web-dev=$v")
  mkdir -p /opt/rust-1.85.tmp
  for f in "$dl"/*.deb; do dpkg -x "$f" /opt/rust-1.85.tmp; done
  rm -rf "$dl" /opt/rust-1.85
  mv /opt/rust-1.85.tmp /opt/rust-1.85
fi
LD_LIBRARY_PATH=/opt/rust-1.85/usr/lib/x86_64-linux-gnu /opt/rust-1.85/usr/bin/rustc --version | grep -q '^rustc 1\.85\.' \
  || { echo "missing after install: rustc 1.85 in /opt/rust-1.85" >&2; exit 1; }

# cargo-fuzz (scripts/fuzz.sh), from crates.io; libFuzzer itself comes with the libfuzzer-sys crate.
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
