#!/usr/bin/env bash
# Runs the kernel crate's test suite under AddressSanitizer (rustup's stable toolchain, with
# RUSTC_BOOTSTRAP=1 to accept -Zsanitizer and an explicit --target so build scripts and proc
# macros are not instrumented). First proves the checker works: a planted read one element past
# the end of a heap allocation (scripts/asan-canary) must be reported, or this script fails.
#
# PROPTEST_CASES (default 4 here) reduces the random cases per property, and DESCENT_TEST_LENGTHS
# (default `tails` here) the lengths of the exhaustive sweeps: ASan is ~2-3x slower.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-gnu
export RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zsanitizer=address" RUSTDOCFLAGS="-Zsanitizer=address"
# Line tables are enough for the reports (file:line); full debuginfo of every kernel instantiation
# costs build time.
export CARGO_PROFILE_TEST_DEBUG=line-tables-only
# In CI the build starts clean, so incremental compilation would only add the bookkeeping of its
# cache; a developer re-running this script keeps cargo's default (their setting, if any).
if [[ -n "${CI:-}" ]]; then
  export CARGO_INCREMENTAL=0
fi
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
dir=$PWD/target/asan

echo "asan: 1/2 the planted out-of-bounds read must be reported"
log=$(mktemp)
if cargo test --manifest-path scripts/asan-canary/Cargo.toml --target "$target" \
  --target-dir "$dir" -- --ignored --exact tests::planted_heap_overread >"$log" 2>&1; then
  cat "$log"
  echo "asan: FAILED: the planted out-of-bounds read passed unreported" >&2
  exit 1
fi
if ! grep -q "ERROR: AddressSanitizer: heap-buffer-overflow" "$log"; then
  cat "$log"
  echo "asan: FAILED: the canary failed, but not with an AddressSanitizer heap-buffer-overflow" >&2
  exit 1
fi
grep -m1 -A3 "ERROR: AddressSanitizer" "$log"
rm -f "$log"
echo "asan: the checker reports the planted read"

echo "asan: 2/2 the kernel test suite (descent-kernels, all targets, doctests excluded)"
export PROPTEST_CASES="${PROPTEST_CASES:-4}"
# The exhaustive length sweeps take the lengths that reach every tail of every backend (0..=40 and
# the neighbours of 64, 128, 192, 256) instead of all of 0..=257; the native run sweeps them all.
export DESCENT_TEST_LENGTHS="${DESCENT_TEST_LENGTHS:-tails}"
cargo test --target "$target" --target-dir "$dir" -p descent-kernels --tests --lib "$@"
