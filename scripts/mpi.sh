#!/usr/bin/env bash
# Local SGD across MPI processes (the descent-mpi crate) on this machine, loopback only.
#
# Installs nothing: needs what .ci/install.sh installs (openmpi-bin, libopenmpi-dev, and
# clang/libclang-dev for the bindings' bindgen). Every mpirun starts its processes on this host
# only, uses only the `self` and `vader` (shared memory) byte-transfer layers and keeps the
# runtime's own TCP wiring on `lo`; no other interface is touched. Each run is bounded by
# `timeout`.
#
# 1. `verify` with 2 and 4 ranks: the MPI simulation against the threaded simulation of the
#    harness, bit for bit, on every schedule (one-shot, constant ⌊rT/N⌋, growing R = N and √N,
#    early, every step) and worker counts that do and do not divide among the ranks.
# 2. `speedup` with 2 and 4 ranks: the local-sgd/speedup check at its default configuration on
#    real processes (its table; exit 1 unless the positive case passes and every control fails);
#    with 4 ranks `--compare-threaded` also runs the threaded check on rank 0, whose records must be
#    the same bit for bit (with 2 ranks `verify` covers the bits; the threaded run would repeat).
# 3. `bench` once with small sizes (a smoke test: timings are printed, never asserted).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v mpirun >/dev/null || { echo "mpirun missing: run .ci/install.sh" >&2; exit 1; }
# The binary as `cargo test --workspace --release` builds it (the workspace's features: in CI,
# right after the tests, nothing is recompiled; `cargo build -p descent-mpi` alone would rebuild
# the harness with other features).
cargo test --release -q --workspace --no-run
bin=target/release/descent-mpi

# OpenMPI's mpirun refuses to run as root unless told explicitly (CI runs as root).
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# `plm isolated`: start the local processes directly (no ssh/rsh agent needed on one host).
mpi=(mpirun --oversubscribe --bind-to none --mca plm isolated --mca btl self,vader
  --mca oob_tcp_if_include lo)

for np in 2 4; do
  echo "--- verify, $np ranks"
  timeout 120 "${mpi[@]}" -n "$np" "$bin" verify
done
echo "--- local-sgd/speedup, 2 ranks"
timeout 300 "${mpi[@]}" -n 2 "$bin" speedup
echo "--- local-sgd/speedup, 4 ranks, compared with the threaded check"
timeout 300 "${mpi[@]}" -n 4 "$bin" speedup --compare-threaded
echo "--- bench (smoke test)"
timeout 60 "${mpi[@]}" -n 2 "$bin" bench --len 1000 --len 100000 --rounds 5
