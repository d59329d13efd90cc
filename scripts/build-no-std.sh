#!/usr/bin/env bash
# Builds the kernel crate with no default features (the embedded build: no std, no runtime
# detection, no allocation) for bare-metal Cortex-M targets. A host build cannot prove no_std,
# because dev-dependencies and the test harness link std; these targets have no std at all.
# Needs Debian's rustc-web with rust-web-src (installed by .ci/install.sh); installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
for target in thumbv7em-none-eabihf thumbv6m-none-eabi; do
  echo "== no_std build of descent-kernels for $target"
  log=$(mktemp)
  /usr/bin/cargo build -Zbuild-std=core --target "$target" --release \
    --target-dir target/no-std -p descent-kernels --no-default-features 2>&1 | tee "$log"
  # Warnings in our crate fail the build (RUSTFLAGS=-D warnings would also apply to core).
  if grep -q '^warning' "$log"; then
    echo "no_std build for $target has warnings" >&2
    exit 1
  fi
done
