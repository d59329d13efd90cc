#!/usr/bin/env bash
# Runs the kernel crate's whole test suite for aarch64-unknown-linux-gnu (NEON backend) under
# user-mode QEMU. Needs the packages that .ci/install.sh installs (Debian's rustc-web with its
# library source, the aarch64 cross linker and libc, qemu-user). Installs nothing itself.
#
# Debian's rustc (not rustup's) must build here: only it matches the library source that
# -Zbuild-std compiles for the target, and RUSTC_BOOTSTRAP lets that stable compiler accept -Z.
set -euo pipefail
cd "$(dirname "$0")/.."

export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
# Emulation is ~10-30x slower than native: fewer random cases than the native run (every length
# and offset is still covered in each case).
export PROPTEST_CASES="${PROPTEST_CASES:-8}"

/usr/bin/cargo test -Zbuild-std --target aarch64-unknown-linux-gnu --release \
  --target-dir target/aarch64 -p descent-kernels "$@"
