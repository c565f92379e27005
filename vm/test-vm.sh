#!/usr/bin/env bash
# make test-vm: boot a real microVM whose /init is rapid, invoke the bundled echo
# function through a port forwarded to 127.0.0.1, shut it down, and check that
# the VM powers off after an orderly shutdown.
#
# Needs (installed by .ci/run when missing): qemu-system-x86_64, a Debian
# kernel (linux-image-cloud-amd64), cpio, curl. Uses KVM when /dev/kvm works,
# else software emulation.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "test-vm: FAIL: $*" >&2; exit 1; }
log() { echo "test-vm: $*"; }

KERNEL=$(ls /boot/vmlinuz-*cloud-amd64 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$KERNEL" ] || KERNEL=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$KERNEL" ] || fail "no kernel in /boot (install linux-image-cloud-amd64)"
KVER=${KERNEL#/boot/vmlinuz-}
MODDIR=/lib/modules/$KVER/kernel
command -v qemu-system-x86_64 >/dev/null || fail "qemu-system-x86_64 missing"
command -v cpio >/dev/null || fail "cpio missing"

log "building static rapid and echo function"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --quiet \
  --target x86_64-unknown-linux-gnu --target-dir target/vm -p rapid -p echo-function
BIN=target/vm/x86_64-unknown-linux-gnu/release

WORK=$(mktemp -d /tmp/rapid-vm.XXXXXX)
QEMU_PID=
cleanup() {
  if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then kill -9 "$QEMU_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

log "assembling the initramfs (kernel $KVER)"
ROOT=$WORK/root
mkdir -p "$ROOT/var/task" "$ROOT/etc" "$ROOT/modules"
cp "$BIN/rapid" "$ROOT/init"
cp "$BIN/echo-function" "$ROOT/var/task/bootstrap"
MODS=""
for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_legacy_dev \
         drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci net/core/failover \
         drivers/net/net_failover drivers/net/virtio_net; do
  f=$MODDIR/$m.ko
  if [ -f "$f" ]; then
    cp "$f" "$ROOT/modules/"
    MODS="$MODS${MODS:+:}/modules/$(basename "$f")"
  elif [ -f "$f.xz" ] || [ -f "$f.zst" ]; then
    fail "compressed modules are not supported: $f.*"
  fi
done
TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$TOKEN" > "$ROOT/etc/rapid-token"
(cd "$ROOT" && find . | cpio -o -H newc --quiet) > "$WORK/initramfs.cpio"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
  || echo $(( 20000 + RANDOM % 20000 )); }
INVOKE_PORT=$(free_port)
CONTROL_PORT=$(free_port)
# Software emulation: portable, and boots this kernel in a few seconds. (KVM is
# not used: nested KVM on CI machines is not reliable.)
ACCEL=tcg

CMDLINE="console=ttyS0 panic=-1 rdinit=/init RAPID_INIT=1 RAPID_INIT_MODULES=$MODS RAPID_INIT_NET=eth0=10.0.2.15/24 \
RAPID_CONTROL_API_ADDRESS=0.0.0.0:7000 RAPID_CONTROL_TOKEN_FILE=/etc/rapid-token RAPID_EXTENSIONS_DIR=/opt/extensions"

log "booting (accel $ACCEL; invoke port $INVOKE_PORT, control port $CONTROL_PORT)"
START=$(date +%s%N)
qemu-system-x86_64 -machine "q35,accel=$ACCEL" -cpu max -m 256 -smp 1 -nographic -no-reboot \
  -kernel "$KERNEL" -initrd "$WORK/initramfs.cpio" -append "$CMDLINE" \
  -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$INVOKE_PORT-:8080,hostfwd=tcp:127.0.0.1:$CONTROL_PORT-:7000" \
  -device virtio-net-pci,netdev=n0 \
  -serial "file:$WORK/console.log" -monitor none -display none >"$WORK/qemu.out" 2>&1 &
QEMU_PID=$!

AUTH="Authorization: Bearer $TOKEN"
CTL=http://127.0.0.1:$CONTROL_PORT
deadline=$(( $(date +%s) + 180 ))
until curl -sf -m 2 -H "$AUTH" "$CTL/v1/state" >/dev/null 2>&1; do
  kill -0 "$QEMU_PID" 2>/dev/null || { cat "$WORK/qemu.out" "$WORK/console.log" >&2 2>/dev/null; fail "qemu exited during boot"; }
  [ "$(date +%s)" -lt "$deadline" ] || { tail -n 40 "$WORK/console.log" >&2; fail "rapid did not answer within 180 s"; }
  sleep 0.2
done
curl -sf -m 30 -H "$AUTH" -X POST -d '{}' "$CTL/v1/init" | grep -q InitSuccess || fail "Init did not succeed"
ANSWER=$(curl -s -m 30 -d '{"hello":"microvm"}' "http://127.0.0.1:$INVOKE_PORT/2015-03-31/functions/function/invocations")
END=$(date +%s%N)
[ "$ANSWER" = '{"hello":"microvm"}' ] || fail "unexpected answer: $ANSWER"
BOOT_MS=$(( (END - START) / 1000000 ))
log "boot to first invoke answered: $BOOT_MS ms"

log "shutting down through the control API"
curl -sf -m 30 -H "$AUTH" -X POST "$CTL/v1/shutdown?exit=true" | grep -q durationMs || fail "shutdown not acknowledged"
for _ in $(seq 1 300); do
  kill -0 "$QEMU_PID" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$QEMU_PID" 2>/dev/null; then tail -n 40 "$WORK/console.log" >&2; fail "the VM did not power off"; fi
wait "$QEMU_PID" || true
QEMU_PID=
grep -q "shutdown complete" "$WORK/console.log" || { tail -n 40 "$WORK/console.log" >&2; fail "no orderly shutdown in the console"; }
grep -q "init: sync and power off" "$WORK/console.log" || fail "rapid did not power off"
grep -q "reboot: Power down" "$WORK/console.log" || { tail -n 20 "$WORK/console.log" >&2; fail "the kernel did not power down"; }
log "PASS: booted, invoked, shut down in order, powered off (boot to first invoke $BOOT_MS ms, accel $ACCEL)"
echo "test-vm: 1 passed, 0 failed"
