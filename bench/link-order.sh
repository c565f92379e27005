#!/usr/bin/env bash
# make link-order: write rapid/link-order.txt, the functions rapid runs when
# it starts, serves warm invokes (Lambda mode and watchdog http mode) and
# shuts down, in the order it first runs them. rapid/build.rs hands the file
# to the linker, which lays those functions out side by side.
#
# How: build rapid with a linker map (RAPID_LINK_MAP), run each scenario
# under callgrind, and name every code address it ran by the map's section
# (the release binary is stripped; the map knows each function's place and
# exact symbol). The names are those of this toolchain and profile; another
# rustc version names std's functions differently and they are left where
# they are.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
if ! command -v valgrind >/dev/null 2>&1; then
    echo "link-order: installing valgrind"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "link-order: building rapid with a linker map"
RAPID_LINK_MAP="$work/rapid.map" $CARGO build --release -p rapid -p echo-function -p rapid-bench
rel=target/release
python3 bench/link_order.py --rapid "$rel/rapid" --function "$rel/echo-function" \
    --bench "$rel/rapid-bench" --map "$work/rapid.map" --work "$work" --out rapid/link-order.txt
echo "link-order: relinking rapid with the new order"
$CARGO build --release -p rapid
