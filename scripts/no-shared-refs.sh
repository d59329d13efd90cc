#!/usr/bin/env bash
# Fails if any tracked file (the set `git ls-files` lists) refers to the design notes that lived
# outside the repository: a relative path into the sibling `shared` directory, or its `papers`
# folder. Their content lives in docs/ now (docs/README.md is the index).
set -euo pipefail
cd "$(dirname "$0")/.."
# The pattern is assembled from pieces so that this script does not match itself.
s=shared
pat="\.\./$s|$s/papers"
# `git grep` searches exactly the tracked files (work-tree contents); -I skips binaries.
# Exit status: 0 = matches found, 1 = none, anything else = error.
set +e
hits=$(git grep -n -I -E -e "$pat")
rc=$?
set -e
case $rc in
    0)
        echo "tracked files refer to notes outside the repository (point them to docs/ instead):" >&2
        echo "$hits" >&2
        exit 1
        ;;
    1) echo "ok: no tracked file refers to ../$s or $s/papers ($(git ls-files | wc -l) files)" ;;
    *)
        echo "git grep failed (status $rc)" >&2
        exit "$rc"
        ;;
esac
