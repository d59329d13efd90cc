#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets, cargo-fuzz with libFuzzer and AddressSanitizer) for
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

for t in "${targets[@]}"; do
  cargo fuzz build -s address "$t"
done
summary=()
for t in "${targets[@]}"; do
  mkdir -p "target/corpus/$t"
  log=$(mktemp)
  echo "fuzz: $t for ${seconds} s"
  if ! cargo fuzz run -s address "$t" "target/corpus/$t" "corpus/$t" -- \
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
