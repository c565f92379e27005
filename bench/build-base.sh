#!/usr/bin/env bash
# Build the release binaries of an earlier commit (rapid and the inproc
# example) into target/bench-base/release, for `make bench-compare`.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: bench/build-base.sh COMMIT}
sha=$(git rev-parse --verify "$base^{commit}")
tree=$(mktemp -d /tmp/rapid-base.XXXXXX)
cleanup() { git worktree remove --force "$tree" >/dev/null 2>&1 || rm -rf "$tree"; }
trap cleanup EXIT
git worktree add --detach "$tree" "$sha" >/dev/null
echo "bench: building $sha (base) into target/bench-base"
top=$PWD
(cd "$tree" && cargo build --release --quiet -p rapid -p inproc-function --target-dir "$top/target/bench-base")
echo "$sha" > target/bench-base/COMMIT
