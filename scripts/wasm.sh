#!/usr/bin/env bash
# Builds the test firmware (embedded/target-tests) for wasm32-unknown-unknown with simd128 and
# runs it under Node.js (embedded/target-tests/wasm/run.mjs): every update rule against the
# firmware's references and, bit for bit, the active backend against Backend::Scalar (f32 rules,
# 16-bit conversions and the 16-bit variant of every rule, src/storage.rs), the model passes and
# the training demo. Fails if the run fails, if any check fails, if the active backend is not
# wasm-simd128, or if no backend comparison ran. Then a deliberately failing build must exit 1.
#
# Installs nothing: needs Debian's rustc-web/cargo-web with rust-web-src (-Zbuild-std=core),
# rust-lld (rust-web-llvm, lld-22) and node, which .ci/install.sh provides.
#
# Usage: scripts/wasm.sh [--quick]   (--quick: skip the fail-demo build)
set -euo pipefail
cd "$(dirname "$0")/../embedded/target-tests"
quick=${1:-}

# Debian's rustc (pinned in .cargo/config.toml, which also sets +simd128 for this target) with
# RUSTC_BOOTSTRAP in cargo's own environment, or cargo silently ignores [unstable] build-std.
export RUSTC_BOOTSTRAP=1
unset RUSTFLAGS CARGO_BUILD_TARGET CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS EMB_BOARD CARGO_PROFILE_RELEASE_CODEGEN_UNITS
cargo=/usr/bin/cargo
target=wasm32-unknown-unknown
wasm=${CARGO_TARGET_DIR:-target}/$target/release/target-tests.wasm
start=$(date +%s)
logs=target/logs
mkdir -p "$logs"
node=$(command -v node || command -v nodejs) || {
  echo "wasm.sh: node not found (.ci/install.sh installs Debian's nodejs)" >&2
  exit 1
}
echo "== $target (+simd128) under $("$node" --version | sed 's/^/Node.js /')"
fail=0

if [[ $quick != --quick ]]; then
  # A deliberately failing check must reach the runner's exit status.
  $cargo build --release --target $target --features fail-demo -q
  status=0
  "$node" wasm/run.mjs "$wasm" >"$logs/wasm32_fail-demo.log" 2>&1 || status=$?
  if [[ $status -ne 1 ]]; then
    echo "FAILED: fail-demo exited with $status, expected 1" >&2
    fail=1
  else
    echo "fail-demo exited with 1 as expected"
  fi
fi

$cargo build --release --target $target -q
log=$logs/wasm32.log
status=0
t0=$(date +%s)
"$node" wasm/run.mjs "$wasm" >"$log" 2>&1 || status=$?
run_s=$(( $(date +%s) - t0 ))
head -n 1 "$log"
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1 || true)
backend=$(sed -n 's/^target-tests on .* \/ backend \([^ ]*\) .*/\1/p' "$log")
compared=$(grep -c 'active backend vs Backend::Scalar.* \.\.\. ok$' "$log" || true)
echo "$summary (run ${run_s} s; $compared checks compare wasm-simd128 with Backend::Scalar bit for bit)"
if [[ $status -ne 0 || -z $summary || $(awk '{print $3}' <<<"$summary") != 0 ]]; then
  echo "FAILED: the wasm32 firmware exited with status $status (log: embedded/target-tests/$log)" >&2
  grep -E 'FAILED|panicked|trap|error' "$log" >&2 || true
  fail=1
fi
if [[ $backend != wasm-simd128 ]]; then
  echo "FAILED: active backend is '$backend', expected wasm-simd128 (built without +simd128?)" >&2
  fail=1
fi
if (( compared == 0 )); then
  echo "FAILED: no check compared the active backend with Backend::Scalar" >&2
  fail=1
fi
echo "wasm section: $(( $(date +%s) - start )) s"
exit $fail
