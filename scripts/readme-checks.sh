#!/usr/bin/env bash
# Fails if the README's check tables (between the BEGIN/END markers) differ from what
# `descent list --markdown` prints: the tables are generated from the check registry, so a check
# added, renamed or re-described in the code must be regenerated into the README.
#   scripts/readme-checks.sh          compare (CI)
#   scripts/readme-checks.sh --write  regenerate the block in place
set -euo pipefail
cd "$(dirname "$0")/.."
begin='<!-- BEGIN descent list --markdown -->'
end='<!-- END descent list --markdown -->'
generated=$(mktemp)
# The binary `cargo test --workspace --release` builds for the harness's CLI tests (the same
# features, so in CI, right after the tests, nothing is recompiled).
cargo test --release -q --workspace --no-run
target/release/descent list --markdown >"$generated"
current=$(mktemp)
awk -v b="$begin" -v e="$end" '$0 == e { inside = 0 } inside { print } $0 == b { inside = 1 }' README.md >"$current"
if [[ ${1:-} == --write ]]; then
  awk -v b="$begin" -v e="$end" -v f="$generated" '
    $0 == b { print; while ((getline line < f) > 0) print line; skip = 1; next }
    $0 == e { skip = 0 }
    !skip { print }' README.md >README.md.new
  mv README.md.new README.md
  echo "readme-checks: README regenerated"
elif ! diff -u "$current" "$generated"; then
  echo "readme-checks: FAILED: the README's check tables differ from \`descent list --markdown\` (run scripts/readme-checks.sh --write)" >&2
  exit 1
else
  echo "readme-checks: the README's check tables match \`descent list --markdown\` ($(grep -c '^| `' "$generated") checks)"
fi
rm -f "$generated" "$current"
