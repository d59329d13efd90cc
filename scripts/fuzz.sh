#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets, cargo-fuzz with libFuzzer) for
# a bounded time each, starting from the committed seed corpus (fuzz/corpus/TARGET, never written
# to: new inputs go to fuzz/target/corpus/TARGET). A crash, panic, sanitizer report or timeout
# fails the script and leaves the input in fuzz/artifacts/TARGET.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 45 s, every target)
#
# Needs cargo-fuzz (.ci/install.sh installs it); RUSTC_BOOTSTRAP=1 lets rustup's stable compiler
# accept the -Z flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-45}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(config kernels)
export RUSTC_BOOTSTRAP=1

# The kernels target runs under AddressSanitizer (the unsafe drivers); the config target parses
# in safe code only and needs the large harness crate, so it is built without a sanitizer (panics
# and libFuzzer's own checks still fail it), which keeps its build time down.
flags() {
  case "$1" in
    config) echo "-s none --features harness" ;;
    *) echo "-s address" ;;
  esac
}
summary=()
# Build and run one target after the other: the two targets' flags differ, and cargo rebuilds
# in place when the flags change.
for t in "${targets[@]}"; do
  # shellcheck disable=SC2046
  cargo fuzz build $(flags "$t") "$t"
  mkdir -p "target/corpus/$t"
  log=$(mktemp)
  echo "fuzz: $t for ${seconds} s"
  # shellcheck disable=SC2046
  if ! cargo fuzz run $(flags "$t") "$t" "target/corpus/$t" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz: FAILED: target $t (input saved under fuzz/artifacts/$t)" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
  summary+=("$t: ${runs:-?} executions in ${seconds} s, ${cov:-cov: ?}, no failure")
  rm -f "$log"
done
printf 'fuzz: %s\n' "${summary[@]}"
