#!/usr/bin/env bash
# make image: build a static rapid, the bundled example function and a static
# HTTP server, and from them two OCI images FROM scratch with podman — no
# registry involved:
#   localhost/rapid:$TAG           rapid (ENTRYPOINT) + examples/echo as /var/task/bootstrap
#   localhost/rapid-watchdog:$TAG  rapid as the OpenFaaS watchdog (http mode) + a static server
# and print their sizes.
#
# Environment: TAG (default `test`); RAPID_STATIC_TARGET_DIR (default
# target/vm: the same static build as make test-vm, so one build serves both).
# Needs podman (.ci/run installs it from Debian when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "image: FAIL: $*" >&2; exit 1; }
log() { echo "image: $*"; }

TAG=${TAG:-test}
TARGET_DIR=${RAPID_STATIC_TARGET_DIR:-target/vm}
TRIPLE=x86_64-unknown-linux-gnu
BIN=$TARGET_DIR/$TRIPLE/release
command -v podman >/dev/null || fail "podman missing (apt-get install podman runc; .ci/run does it)"

log "building static rapid, echo function and HTTP server (target dir $TARGET_DIR)"
# rapid and echo exactly as vm/test-vm.sh builds them (shared artifacts); the
# server apart, so that the test crate's features do not change rapid's build.
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --quiet \
  --target "$TRIPLE" --target-dir "$TARGET_DIR" -p rapid -p echo-function
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --quiet \
  --target "$TRIPLE" --target-dir "$TARGET_DIR" -p rapid-tests --bin fx-upstream
# FROM scratch has no dynamic loader: a binary that asks for one cannot start.
if command -v readelf >/dev/null; then
  for b in rapid echo-function fx-upstream; do
    headers=$(readelf -l "$BIN/$b")
    if grep -q 'INTERP' <<<"$headers"; then fail "$BIN/$b is not static"; fi
  done
fi

CTX=$(mktemp -d /tmp/rapid-image.XXXXXX)
trap 'rm -rf "$CTX"' EXIT
# /tmp with mode 1777 (COPY makes directories 0755): a tar that ADD extracts.
mkdir -p "$CTX/root/tmp" && chmod 1777 "$CTX/root/tmp"
tar --numeric-owner --owner=0 --group=0 -C "$CTX/root" -cf "$CTX/rootfs.tar" tmp

build() { # build IMAGE CONTAINERFILE FILE:NAME...
  local image=$1 file=$2 dir
  shift 2
  dir=$CTX/$(basename "$file")
  mkdir -p "$dir"
  cp "$CTX/rootfs.tar" "$dir/"
  for f in "$@"; do cp "${f%%:*}" "$dir/${f##*:}"; done
  podman build --quiet --pull=never -f "$file" -t "$image" "$dir" >/dev/null \
    || fail "podman build of $image failed"
  local size
  size=$(podman image inspect --format '{{.Size}}' "$image")
  log "built $image: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1048576 }') MiB)"
}

build "localhost/rapid:$TAG" container/Containerfile \
  "$BIN/rapid:rapid" "$BIN/echo-function:bootstrap"
build "localhost/rapid-watchdog:$TAG" container/Containerfile.watchdog \
  "$BIN/rapid:rapid" "$BIN/fx-upstream:server"
log "binaries: rapid $(stat -c %s "$BIN/rapid") bytes, echo $(stat -c %s "$BIN/echo-function") bytes"
log "run it: podman run --rm -p 127.0.0.1:8080:8080 localhost/rapid:$TAG"
