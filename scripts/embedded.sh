#!/usr/bin/env bash
# Builds the test firmware (embedded/target-tests) for every embedded target, runs it under QEMU
# system emulation, checks each exit status, and prints tables: cases passed, training accuracy,
# static RAM, instructions per element and code size of each update rule.
#
# Installs nothing: needs what .ci/install.sh installs (Debian's rustc-web/cargo-web with
# rust-web-src for -Zbuild-std, rust-web-llvm + lld-22 for rust-lld and llvm-{size,nm,objdump}-22,
# qemu-system-arm and qemu-system-misc). The recipe is written up in docs/embedded.md.
#
# Usage: scripts/embedded.sh [--quick]   (--quick: skip the M4F sqrt-variant and fail-demo builds)
set -euo pipefail
cd "$(dirname "$0")/../embedded/target-tests"
quick=${1:-}

# Debian's rustc (pinned in .cargo/config.toml) with RUSTC_BOOTSTRAP in cargo's own environment,
# or cargo silently ignores [unstable] build-std.
export RUSTC_BOOTSTRAP=1
unset RUSTFLAGS CARGO_BUILD_TARGET EMB_BOARD CARGO_PROFILE_RELEASE_CODEGEN_UNITS
cargo=/usr/bin/cargo
start=$(date +%s)
logs=target/logs
mkdir -p "$logs"

# target board
rows=(
  "thumbv6m-none-eabi microbit"
  "thumbv7em-none-eabihf mps2-an386"
  "thumbv8m.main-none-eabihf mps3-an547"
  "thumbv8m.main-none-eabihf mps2-an505"
  "riscv32imac-unknown-none-elf riscv-virt"
  "riscv32imafc-unknown-none-elf riscv-virt"
  "aarch64-unknown-none aarch64-virt"
)
rules=(gd sgd sgd_nesterov adam adamw amsgrad sign_descent signum lion running_mean ema replica_mean
  lamb schedule_free_adamw schedule_free_sgd adam8 adafactor_vector adam_kahan_bf16)
# The rows from lamb on are measured by the images that hold src/tensor.rs (on the micro:bit, the
# `tensor-only` image; see src/bench.rs); Muon is not measured (cost per element grows with the
# matrix).
declare -A passed failed acc acc8 st32 st8 ram text insn size mem sqrt backend ckpt
fail=0
m4="thumbv7em-none-eabihf/mps2-an386"

build() { # target board [features]
  local feat=()
  [[ -n ${3:-} ]] && feat=(--features "$3")
  EMB_BOARD=$2 $cargo build --release --target "$1" "${feat[@]}" -q
}

run() { # target board log -> exit status
  EMB_TIMEOUT=600 ./qemu-run.sh "$2" "target/$1/release/target-tests" >"$3" 2>&1 && return 0 || return $?
}

# Code size of a rule: its #[inline(never)] wrapper plus every function it reaches by direct call
# or tail call that is kernel code (descent_kernels or this crate), i.e. what linking that rule
# adds besides library routines; the libm routines it reaches (Adam's `pow`) are counted apart.
# Functions are keyed by address (identical wrappers may be folded into one).
sizes() { # elf -> lines "rule kernel_bytes libm_bytes"
  local elf=$1
  # Addresses stay hex strings (mawk's numbers lose precision above 2^31); sizes in decimal.
  llvm-nm-22 --print-size --defined-only "$elf" | awk '
    function hex(s,   i, v) { v = 0; s = tolower(s)
      for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
      return v }
    NF == 4 { a = $1; sub(/^0+/, "", a); print a, hex($2), $4 }' >"$logs/nm.txt"
  # "caller_address callee_name" for every direct call or tail call to the start of a function
  # (Arm bl/b, AArch64 bl/b, RISC-V jal/j and auipc+jalr, whose line names the callee).
  llvm-objdump-22 -d --no-show-raw-insn "$elf" | awk '
    /^[0-9a-f]+ <[^>]+>:$/ { f = $1; sub(/^0+/, "", f); next }
    f != "" && $0 ~ /[ \t](bl|blx|b|b\.w|jal|jalr|j|call|tail)[ \t].*<[^>+]+>/ {
      match($0, /<[^>+]+>/); print f, substr($0, RSTART + 1, RLENGTH - 2)
    }' | sort -u >"$logs/calls.txt"
  for r in "${rules[@]}"; do
    awk -v root="rule_$r" '
      FILENAME ~ /nm.txt$/ {
        if (!($1 in sz) || $2 > sz[$1]) sz[$1] = $2
        if ($3 == root) start = $1
        addr[$3] = $1
        if ($3 ~ /15descent_kernels|12target_tests|^rule_/) kern[$1] = 1
        if ($3 ~ /4libm/) libm[$1] = 1
        next
      }
      $2 in addr { calls[$1] = calls[$1] " " addr[$2] }
      END {
        if (start == "") { print substr(root, 6), "-", 0; exit }
        q[0] = start; seen[start] = 1; n = 1; k = 0; l = 0
        for (i = 0; i < n; i++) {
          a = q[i]
          if (!(a in kern)) { if (a in libm) l += sz[a]; continue }   # not followed into libraries
          k += sz[a]
          m = split(calls[a], c, " ")
          for (j = 1; j <= m; j++) if (!(c[j] in seen) && (c[j] in sz)) { seen[c[j]] = 1; q[n++] = c[j] }
        }
        print substr(root, 6), k, l
      }' "$logs/nm.txt" "$logs/calls.txt"
  done
}

for row in "${rows[@]}"; do
  read -r t b <<<"$row"
  key="$t/$b"
  echo "== $t on $b"
  t0=$(date +%s)
  build "$t" "$b"
  log="$logs/${t}_$b.log"
  status=0
  run "$t" "$b" "$log" || status=$?
  tail -n 1 "$log"
  elf="target/$t/release/target-tests"
  summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1 || true)
  passed[$key]=$(awk '{print $1}' <<<"$summary")
  failed[$key]=$(awk '{print $3}' <<<"$summary")
  acc[$key]=$(sed -n 's/^train accuracy \([0-9.]*\).*/\1/p' "$log")
  acc[$key]=${acc[$key]:--}
  acc8[$key]=$(sed -n 's/^train adam8 accuracy \([0-9.]*\).*/\1/p' "$log")
  acc8[$key]=${acc8[$key]:--}
  st32[$key]=$(sed -n 's/^train optimizer state: f32 AdamW \([0-9]*\) B, 8-bit AdamW \([0-9]*\) B.*/\1/p' "$log")
  st8[$key]=$(sed -n 's/^train optimizer state: f32 AdamW \([0-9]*\) B, 8-bit AdamW \([0-9]*\) B.*/\2/p' "$log")
  ckpt[$key]=$(sed -n 's/^train checkpoint \([0-9]*\) bytes.*/\1/p' "$log")
  ckpt[$key]=${ckpt[$key]:--}
  sqrt[$key]=$(sed -n 's/^target-tests on .* \/ sqrt \(.*\)$/\1/p' "$log")
  backend[$key]=$(sed -n 's/^target-tests on .* \/ backend \([^ ]*\) .*/\1/p' "$log")
  ram[$key]=$(llvm-size-22 -A "$elf" | awk '$1 == ".data" || $1 == ".bss" || $1 == ".uninit" { s += $2 } END { print s }')
  text[$key]=$(llvm-size-22 -A "$elf" | awk '$1 == ".text" { print $2 }')
  for r in "${rules[@]}"; do
    insn[$key/$r]=$(sed -n "s/^bench $r: \([0-9.]*\) insn\/elem.*/\1/p" "$log")
    mem[$key/$r]=$(sed -n "s/^bench $r: .*, state \([0-9]*\) B$/\1/p" "$log")
  done
  while read -r r k l; do
    if [[ $l == 0 ]]; then size[$key/$r]=$k; else size[$key/$r]="$k+$l"; fi
  done < <(sizes "$elf")
  if [[ $status -ne 0 || -z $summary || ${failed[$key]} != 0 ]]; then
    echo "FAILED: $t on $b exited with status $status (log: embedded/target-tests/$log)" >&2
    grep -E 'FAILED|panicked|Fault|exception' "$log" >&2 || true
    fail=1
  fi
  echo "   ($(( $(date +%s) - t0 )) s)"
done

# The micro:bit's 256 KiB of flash hold either src/tensor.rs's checks or the rest: its default
# image (above) leaves them out, this one runs only them; its cases are added to the micro:bit row.
echo "== thumbv6m-none-eabi on microbit, feature tensor-only"
build thumbv6m-none-eabi microbit tensor-only
log="$logs/thumbv6m-none-eabi_microbit_tensor-only.log"
status=0
run thumbv6m-none-eabi microbit "$log" || status=$?
tail -n 1 "$log"
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1 || true)
key="thumbv6m-none-eabi/microbit"
if [[ $status -ne 0 || -z $summary || $(awk '{print $3}' <<<"$summary") != 0 ]]; then
  echo "FAILED: micro:bit tensor-only image exited with status $status (log: embedded/target-tests/$log)" >&2
  grep -E 'FAILED|panicked|Fault|exception' "$log" >&2 || true
  fail=1
fi
passed[$key]="${passed[$key]:-0} + $(awk '{print $1}' <<<"$summary")"
# The rules this image measures (those of src/tensor.rs, see src/bench.rs): their rows come from it.
for r in "${rules[@]}"; do
  v=$(sed -n "s/^bench $r: \([0-9.]*\) insn\/elem.*/\1/p" "$log")
  if [[ -n $v ]]; then
    insn[$key/$r]=$v
    mem[$key/$r]=$(sed -n "s/^bench $r: .*, state \([0-9]*\) B$/\1/p" "$log")
  fi
done
while read -r r k l; do
  if [[ ${size[$key/$r]:--} == - && $k != - ]]; then
    if [[ $l == 0 ]]; then size[$key/$r]=$k; else size[$key/$r]="$k+$l"; fi
  fi
done < <(sizes target/thumbv6m-none-eabi/release/target-tests)
failed[$key]=$(( ${failed[$key]:-0} + $(awk '{print $3}' <<<"${summary:-0 passed, 1 failed}") ))

declare -A variant small small_insn
# The M4F with the kernels' `small-code` feature (one general loop per rule): run it (the checks
# must pass in that mode too) and measure each rule's code size.
echo "== thumbv7em-none-eabihf on mps2-an386, feature small-code"
build thumbv7em-none-eabihf mps2-an386 small-code
log="$logs/m4f_small-code.log"
status=0
run thumbv7em-none-eabihf mps2-an386 "$log" || status=$?
tail -n 1 "$log"
if [[ $status -ne 0 ]]; then
  echo "FAILED: M4F with feature small-code exited with status $status" >&2
  fail=1
fi
while read -r r k l; do
  if [[ $l == 0 ]]; then small[$r]=$k; else small[$r]="$k+$l"; fi
  small_insn[$r]=$(sed -n "s/^bench $r: \([0-9.]*\) insn\/elem.*/\1/p" "$log")
done < <(sizes target/thumbv7em-none-eabihf/release/target-tests)
if [[ $quick != --quick ]]; then
  # The M4F with libm's software sqrt and with core::f32::math::sqrt, for comparison.
  for f in libm-sqrt unstable-float-math; do
    echo "== thumbv7em-none-eabihf on mps2-an386, feature $f"
    build thumbv7em-none-eabihf mps2-an386 "$f"
    log="$logs/m4f_$f.log"
    status=0
    run thumbv7em-none-eabihf mps2-an386 "$log" || status=$?
    tail -n 1 "$log"
    if [[ $status -ne 0 ]]; then
      echo "FAILED: M4F with feature $f exited with status $status" >&2
      fail=1
    fi
    for r in adam adamw amsgrad; do
      variant[$f/$r]=$(sed -n "s/^bench $r: \([0-9.]*\) insn\/elem.*/\1/p" "$log")
    done
  done
  # A deliberately failing check must reach the exit status.
  echo "== fail-demo (must exit 1)"
  build thumbv7em-none-eabihf mps2-an386 fail-demo
  status=0
  run thumbv7em-none-eabihf mps2-an386 "$logs/fail-demo.log" || status=$?
  if [[ $status -ne 1 ]]; then
    echo "FAILED: fail-demo exited with $status, expected 1" >&2
    fail=1
  else
    echo "fail-demo exited with 1 as expected"
  fi
fi

# ---------------------------------------------------------------- tables
echo
echo "## Embedded targets (QEMU 7.2, -icount shift=0)"
echo
echo "| target | board (core) | backend | f32 sqrt | cases passed | failed | MLP training accuracy | checkpoint (B) | static RAM (B) | .text (B) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
declare -A cpu=([microbit]="Cortex-M0" [mps2-an386]="Cortex-M4F" [mps3-an547]="Cortex-M55"
  [mps2-an505]="Cortex-M33" [riscv-virt]="rv32" [aarch64-virt]="Cortex-A72")
col() { # target board -> column name
  case $1 in
    riscv32imac-*) echo "rv32imac" ;;
    riscv32imafc-*) echo "rv32imafc" ;;
    *) echo "${cpu[$2]}" ;;
  esac
}
for row in "${rows[@]}"; do
  read -r t b <<<"$row"
  k="$t/$b"
  echo "| \`$t\` | $b ($(col "$t" "$b")) | ${backend[$k]} | ${sqrt[$k]} | ${passed[$k]:-0} | ${failed[$k]:-?} | ${acc[$k]} | ${ckpt[$k]} | ${ram[$k]} | ${text[$k]} |"
done
echo
echo "MLP training demo, f32 AdamW state vs 8-bit AdamW state (Adam8; same seeds, schedule, clipping; both must reach test accuracy >= 0.95):"
echo
echo "| target | board (core) | accuracy, f32 state | accuracy, 8-bit state | optimizer state f32 (B) | optimizer state 8-bit (B) | RAM saved (B) |"
echo "|---|---|---|---|---|---|---|"
for row in "${rows[@]}"; do
  read -r t b <<<"$row"
  k="$t/$b"
  saved=-
  [[ -n ${st32[$k]} && -n ${st8[$k]} ]] && saved=$(( st32[$k] - st8[$k] ))
  echo "| \`$t\` | $b ($(col "$t" "$b")) | ${acc[$k]} | ${acc8[$k]} | ${st32[$k]:--} | ${st8[$k]:--} | $saved |"
done
echo
echo "Instructions per element of each update rule (f32, one call, n = 1024; 256 on the micro:bit):"
echo
hdr="| rule |"; sep="|---|"
for row in "${rows[@]}"; do read -r t b <<<"$row"; hdr+=" $(col "$t" "$b") |"; sep+="---|"; done
echo "$hdr"; echo "$sep"
for r in "${rules[@]}"; do
  line="| $r |"
  for row in "${rows[@]}"; do read -r t b <<<"$row"; line+=" ${insn[$t/$b/$r]:--} |"; done
  echo "$line"
done
echo
echo "State the caller keeps for each rule (from the kernels' length functions), bytes at the bench's n (1024 on the M4F, 256 on the micro:bit) and per parameter:"
echo
echo "| rule | bytes, n = 1024 (Cortex-M4F) | bytes, n = 256 (Cortex-M0) | bytes per parameter |"
echo "|---|---|---|---|"
mb="thumbv6m-none-eabi/microbit"
for r in "${rules[@]}"; do
  a=${mem[$m4/$r]:-}
  per=-
  [[ -n $a ]] && per=$(awk -v a="$a" 'BEGIN { printf "%.2f", a / 1024 }')
  echo "| $r | ${a:--} | ${mem[$mb/$r]:--} | $per |"
done
echo
echo "Code size of each update rule in bytes (wrapper + kernel code it reaches; +N = libm routines it calls):"
echo
echo "$hdr"; echo "$sep"
for r in "${rules[@]}"; do
  line="| $r |"
  for row in "${rows[@]}"; do read -r t b <<<"$row"; line+=" ${size[$t/$b/$r]:--} |"; done
  echo "$line"
done
echo
echo "Cortex-M4F, default build vs \`small-code\` (one general loop per rule): code size in bytes and instructions per element:"
echo
echo "| rule | size, default | size, small-code | insn/elem, default | insn/elem, small-code |"
echo "|---|---|---|---|---|"
for r in "${rules[@]}"; do
  echo "| $r | ${size[$m4/$r]:--} | ${small[$r]:--} | ${insn[$m4/$r]:--} | ${small_insn[$r]:--} |"
done
if [[ $quick != --quick ]]; then
  echo
  echo "Cortex-M4F, instructions per element by f32 square root:"
  echo
  echo "| rule | vsqrt.f32 via inline asm (default, stable) | libm::sqrtf (software) | core::f32::math::sqrt (unstable) |"
  echo "|---|---|---|---|"
  for r in adam adamw amsgrad; do
    echo "| $r | ${insn[$m4/$r]:--} | ${variant[libm-sqrt/$r]:--} | ${variant[unstable-float-math/$r]:--} |"
  done
fi
echo
# The issue's targets for the M4F, reported (not enforced): Adam <= 20, SGD <= 5 insn/elem.
awk -v a="${insn[$m4/adam]:-0}" -v g="${insn[$m4/gd]:-0}" -v s="${insn[$m4/sgd]:-0}" 'BEGIN {
  printf "M4F targets: Adam %.2f insn/elem (target <= 20: %s); SGD without momentum (gd) %.2f, with momentum %.2f (target <= 5: %s)\n",
    a, (a <= 20 ? "met" : sprintf("missed by %.2f", a - 20)), g, s, (g <= 5 ? "met without momentum" : "missed") }'
# Static RAM budget of the firmware (arenas, training demo included) on the M4F: 64 KiB.
if (( ${ram[$m4]:-999999} > 65536 )); then
  echo "FAILED: M4F static RAM ${ram[$m4]} B exceeds 64 KiB" >&2
  fail=1
fi
echo "embedded section: $(( $(date +%s) - start )) s"
exit $fail
