#!/usr/bin/env bash
# Regenerates the committed loss-curve plots of the optimizer-state/formats experiment
# (docs/checks/img/optimizer-state-formats-*.svg) from `descent check ... --plots`: the MLP at the
# defaults (positive case and the 2-bit negative control) and the CNN at the settings of the
# documentation's CNN table (positive case).
#   scripts/state-format-plots.sh
# The curves come from the run's own training: the model passes go through the active backend's
# matrix multiply, so a machine with another backend may draw curves that differ in the last bits.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p descent-harness
out=docs/checks/img
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
key=optimizer-state/formats
target/release/descent check "$key" --plots "$tmp/mlp" >/dev/null
target/release/descent check "$key" --set "$key.model=cnn" --set "$key.lr=0.01" \
  --set "$key.adafactor_lr=0.03" --set "$key.seed=2" --plots "$tmp/cnn" >/dev/null
cp "$tmp/mlp/optimizer-state__formats__positive.svg" "$out/optimizer-state-formats-mlp.svg"
cp "$tmp/mlp/optimizer-state__formats__NC1.svg" "$out/optimizer-state-formats-mlp-nc1.svg"
cp "$tmp/cnn/optimizer-state__formats__positive.svg" "$out/optimizer-state-formats-cnn.svg"
echo "state-format-plots: wrote $out/optimizer-state-formats-{mlp,mlp-nc1,cnn}.svg"
