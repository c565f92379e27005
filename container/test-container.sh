#!/usr/bin/env bash
# make test-container: rapid as PID 1 of containers that a real container
# engine starts — podman with the runc runtime — from the images of make image
# (built here under a tag of this run, and removed at the end with every
# container of the run). Checks, each failing when the behaviour breaks:
#
#   invoke      an invoke through a port published on 127.0.0.1; rapid is PID 1
#   orphans     double-forked and setsid orphans are re-parented to rapid and
#               reaped: no zombie left in the container's PID namespace
#   stop        podman stop → orderly shutdown (logged), exit code 0, within
#               the grace period
#   read-only   --read-only root with a tmpfs /tmp
#   user        --user 1000:1000, --cap-drop ALL (rapid and the runtime)
#   memory      --memory 128m; REPORT's Max Memory Used within 10 % of what the
#               container's cgroup reports for the runtime (method below)
#   watchdog    the watchdog image answers /_/health and /_/ready as
#               Kubernetes probes call them; SIGTERM makes it unready first
#   lambda-rie  rapid installed as aws-lambda-rie with the argv of the AWS
#               base images' /lambda-entrypoint.sh: the handler reaches _HANDLER
#
# and prints the figures: image size, start to first answer, stop to exit.
#
# Needs podman, runc, curl and python3 (.ci/run installs podman and runc from
# Debian). runc, not crun: crun refuses hybrid cgroup hierarchies. podman is
# given explicit --ulimit nofile/nproc values: without them runc fails to set
# the limits it inherits ("error setting rlimit type 7: operation not
# permitted"). Environment: RAPID_OCI_RUNTIME (default runc),
# RAPID_STATIC_TARGET_DIR (default target/vm, as make image).
#
# If podman cannot run a container here, this fails; it never passes without
# having run the checks.
set -euo pipefail
cd "$(dirname "$0")/.."
# (With pipefail, `cmd | grep -q` fails when grep exits first and cmd gets
# SIGPIPE: output is captured first and grepped from a variable.)

log() { echo "test-container: $*"; }
die() { echo "test-container: FAIL: $*" >&2; exit 1; }

TAG=ci-$$
TARGET_DIR=${RAPID_STATIC_TARGET_DIR:-target/vm}
BIN=$TARGET_DIR/x86_64-unknown-linux-gnu/release
OCI_RUNTIME=${RAPID_OCI_RUNTIME:-runc}
GRACE=10 # podman stop's grace period, seconds
LAMBDA=localhost/rapid:$TAG
WATCHDOG=localhost/rapid-watchdog:$TAG
FIXTURE=localhost/rapid-fixture:$TAG
INVOKE_PATH=/2015-03-31/functions/function/invocations

for tool in podman "$OCI_RUNTIME" curl python3; do
  command -v "$tool" >/dev/null || die "$tool is not installed (.ci/run installs podman and runc from Debian)"
done

WORK=$(mktemp -d /tmp/rapid-container.XXXXXX)
IMAGES=("$LAMBDA" "$WATCHDOG" "$FIXTURE")
cleanup() {
  local ids
  ids=$(podman ps -aq --filter "label=rapid-test=$TAG" 2>/dev/null || true)
  # shellcheck disable=SC2086
  [ -z "$ids" ] || podman rm -f -t 0 $ids >/dev/null 2>&1 || true
  for i in "${IMAGES[@]}"; do podman rmi -f "$i" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Limits runc can set here: at most the hard limits this shell has.
limit() { # limit WANTED HARD
  if [ "$2" = unlimited ] || [ "$2" -ge "$1" ]; then echo "$1"; else echo "$2"; fi
}
NOFILE=$(limit 16384 "$(ulimit -Hn)")
NPROC=$(limit 4096 "$(ulimit -Hu)")
RUN=(podman run --runtime "$OCI_RUNTIME" --ulimit "nofile=$NOFILE:$NOFILE"
  --ulimit "nproc=$NPROC:$NPROC" --label "rapid-test=$TAG")

log "building the images (container/build-image.sh, tag $TAG)"
TAG=$TAG bash container/build-image.sh | tee "$WORK/build.log"
IMAGE_SIZE=$(podman image inspect --format '{{.Size}}' "$LAMBDA")
WATCHDOG_SIZE=$(podman image inspect --format '{{.Size}}' "$WATCHDOG")

log "building the fixture image (fx-container, rapid as aws-lambda-rie)"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --quiet \
  --target x86_64-unknown-linux-gnu --target-dir "$TARGET_DIR" -p rapid-tests --bin fx-container
mkdir -p "$WORK/fixture"
cp "$BIN/fx-container" "$BIN/rapid" "$WORK/fixture/"
podman build --quiet --pull=never --build-arg "BASE=$LAMBDA" -f container/Containerfile.fixture \
  -t "$FIXTURE" "$WORK/fixture" >/dev/null || die "podman build of the fixture image failed"

log "podman $(podman version --format '{{.Client.Version}}'), $($OCI_RUNTIME --version | sed -n 1p), cgroups $(podman info --format '{{.Host.CgroupsVersion}}'), ulimits nofile=$NOFILE nproc=$NPROC"
# A container that only prints rapid's version: if podman cannot run a
# container at all here, say so and stop.
if ! out=$("${RUN[@]}" --rm "$LAMBDA" --version 2>&1) || [[ "$out" != rapid* ]]; then
  die "podman cannot run a container here ($OCI_RUNTIME): $out"
fi

# ---------------------------------------------------------------- helpers

USED_PORTS=" "
free_port() { # a free port on 127.0.0.1, never the same twice in this run
  local p
  while :; do
    p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    case "$USED_PORTS" in *" $p "*) continue ;; esac
    USED_PORTS="$USED_PORTS$p "
    echo "$p"
    return
  done
}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
figure() { echo "$1|$2" >> "$WORK/figures"; }

CTR= # the container of the running check, for fail's log dump
fail() {
  echo "test-container: $CHECK: $*" >&2
  if [ -n "$CTR" ]; then
    echo "--- podman logs $CTR (last 30 lines)" >&2
    podman logs --tail 30 "$CTR" >&2 2>&1 || true
  fi
  exit 1
}

start() { # start NAME PODMAN-ARGS... — runs a container, sets CTR
  CTR=rapid-test-$TAG-$1
  shift
  "${RUN[@]}" -d --name "$CTR" "$@" >/dev/null || fail "podman run failed"
}

invoke() { # invoke PORT BODY [CURL-ARGS...] — the answer's body
  local port=$1 body=$2
  shift 2
  curl -s -m 30 "$@" -d "$body" "http://127.0.0.1:$port$INVOKE_PATH"
}

wait_answer() { # wait_answer PORT BODY EXPECTED — first invoke that answers EXPECTED
  local deadline=$(( $(now_ms) + 20000 )) got= n=0
  while [ "$(now_ms)" -lt "$deadline" ]; do
    got=$(curl -s -m 2 -d "$2" "http://127.0.0.1:$1$INVOKE_PATH" 2>/dev/null || true)
    [ "$got" = "$3" ] && return 0
    n=$(( n + 1 ))
    if [ $(( n % 25 )) = 0 ] && [ "$(podman inspect --format '{{.State.Running}}' "$CTR")" != true ]; then
      fail "the container exited"
    fi
    sleep 0.02
  done
  fail "no answer $3 within 20 s (last: $got)"
}

host_pid() { podman inspect --format '{{.State.Pid}}' "$CTR"; }

# Every process of the PID namespace of host process $1, seen from the host:
# "hostpid nspid host-ppid state name" per line.
ns_procs() {
  local ns d
  ns=$(readlink "/proc/$1/ns/pid")
  for d in /proc/[0-9]*; do
    [ "$(readlink "$d/ns/pid" 2>/dev/null)" = "$ns" ] || continue
    awk -v h="${d#/proc/}" '/^Name:/ {n=$2} /^State:/ {s=$2} /^PPid:/ {pp=$2} /^NSpid:/ {np=$NF}
      END {if (np != "") print h, np, pp, s, n}' "$d/status" 2>/dev/null || true
  done
}

assert_pid1() { # rapid (argv[0] $1) is PID 1 of the container
  local hp nspid argv0
  hp=$(host_pid)
  nspid=$(awk '/^NSpid:/ {print $NF}' "/proc/$hp/status")
  argv0=$(tr '\0' '\n' < "/proc/$hp/cmdline" | sed -n 1p)
  [ "$nspid" = 1 ] || fail "PID 1 of the container is not rapid (rapid's pid there: $nspid)"
  [ "$argv0" = "$1" ] || fail "PID 1 runs $argv0, not $1"
}

probe() { # probe PORT PATH — status code of a GET as the kubelet sends it
  curl -s -o /dev/null -w '%{http_code}' -m 2 -A 'kube-probe/1.31' -H 'Accept: */*' \
    -H 'Connection: close' "http://127.0.0.1:$1$2" || true
}

# ---------------------------------------------------------------- checks

check_invoke() {
  local port t0 ms body logs
  port=$(free_port)
  t0=$(now_ms)
  start invoke -p "127.0.0.1:$port:8080" "$LAMBDA"
  wait_answer "$port" '{"hello":"container"}' '{"hello":"container"}'
  ms=$(( $(now_ms) - t0 ))
  figure "start to first answer (podman run → invoke answered)" "$ms ms"
  assert_pid1 /usr/local/bin/rapid
  body=$(invoke "$port" '{"n":2}' -H 'X-Amz-Log-Type: Tail' -D "$WORK/invoke.headers")
  [ "$body" = '{"n":2}' ] || fail "second invoke answered $body"
  grep -qi '^X-Amz-Log-Result:' "$WORK/invoke.headers" || fail "no X-Amz-Log-Result header"
  logs=$(podman logs "$CTR" 2>/dev/null)
  grep -q '^REPORT RequestId: ' <<<"$logs" || fail "no REPORT line on stdout"
  log "invoke: answered through 127.0.0.1:$port after $ms ms; rapid is PID 1"
}

check_orphans() {
  local port hp round ans d s all=() snap line left zombies inside
  port=$(free_port)
  start orphans -p "127.0.0.1:$port:8080" "$FIXTURE"
  wait_answer "$port" '{"write":"/tmp/warm"}' '"ok"'
  hp=$(host_pid)
  for round in 1 2 3; do
    ans=$(invoke "$port" '{"orphans":1500}')
    d=$(sed -n 's/.*"double":\([0-9]*\).*/\1/p' <<<"$ans")
    s=$(sed -n 's/.*"setsid":\([0-9]*\).*/\1/p' <<<"$ans")
    [ -n "$d" ] && [ -n "$s" ] || fail "round $round: the function answered $ans"
    all+=("$d" "$s")
  done
  # Alive for 1.5 s: each is in the container, its parent gone, re-parented to rapid.
  snap=$(ns_procs "$hp")
  for p in "${all[@]}"; do
    line=$(awk -v p="$p" '$2 == p' <<<"$snap")
    [ -n "$line" ] || fail "orphan $p not found in the container:"$'\n'"$snap"
    [ "$(awk '{print $3}' <<<"$line")" = "$hp" ] || fail "orphan $p was not re-parented to rapid: $line"
  done
  # The setsid ones left the runtime's session.
  sid() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $4}'; }
  d=$(awk -v p="${all[0]}" '$2 == p {print $1}' <<<"$snap")
  s=$(awk -v p="${all[1]}" '$2 == p {print $1}' <<<"$snap")
  [ "$(sid "$d")" != "$(sid "$s")" ] || fail "the setsid orphan shares the double-forked one's session"
  # They exit after 1.5 s; rapid must reap them. A zombie stays in the
  # process table, so "gone" means reaped.
  local deadline=$(( $(now_ms) + 10000 ))
  while :; do
    snap=$(ns_procs "$hp")
    left=$(for p in "${all[@]}"; do awk -v p="$p" '$2 == p' <<<"$snap"; done)
    [ -z "$left" ] && break
    [ "$(now_ms)" -lt "$deadline" ] || fail "orphans not reaped 10 s after they ended:"$'\n'"$left"
    sleep 0.1
  done
  zombies=$(awk '$4 == "Z"' <<<"$snap")
  [ -z "$zombies" ] || fail "zombies in the container:"$'\n'"$zombies"
  # The function's own view of /proc agrees.
  inside=$(invoke "$port" '{"ps":true}')
  grep -q '"Z"' <<<"$inside" && fail "the function sees zombies: $inside"
  log "orphans: ${#all[@]} orphans (3 double-forked, 3 setsid) re-parented to rapid and reaped; no zombie; processes now: $(awk '{printf "%s%s(%s)", sep, $5, $2; sep=" "}' <<<"$snap")"
}

check_stop() {
  local port t0 ms code logs
  port=$(free_port)
  start stop -p "127.0.0.1:$port:8080" "$LAMBDA"
  wait_answer "$port" '{"before":"stop"}' '{"before":"stop"}'
  t0=$(now_ms)
  podman stop -t "$GRACE" "$CTR" >/dev/null || fail "podman stop failed"
  ms=$(( $(now_ms) - t0 ))
  code=$(podman inspect --format '{{.State.ExitCode}}' "$CTR")
  [ "$code" = 0 ] || fail "exit code $code after podman stop (137 = killed after the grace period)"
  [ "$ms" -lt $(( GRACE * 1000 )) ] || fail "podman stop took $ms ms (grace $GRACE s)"
  logs=$(podman logs "$CTR" 2>&1)
  grep -q 'shutting down signal="SIGTERM"' <<<"$logs" || fail "rapid did not log the SIGTERM"
  grep -q 'shutdown complete' <<<"$logs" || fail "rapid did not log its shutdown"
  figure "stop to exit (podman stop → container exited, code 0)" "$ms ms"
  log "stop: SIGTERM → orderly shutdown, exit code 0 in $ms ms (grace $GRACE s)"
}

check_read_only() {
  local port ans
  port=$(free_port)
  start read-only --read-only --tmpfs /tmp:rw,size=64m,mode=1777 -p "127.0.0.1:$port:8080" "$FIXTURE"
  wait_answer "$port" '{"write":"/tmp/probe"}' '"ok"'
  [ "$(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$CTR")" = true ] || fail "the root is not read-only"
  for path in /var/task/probe /probe; do
    ans=$(invoke "$port" "{\"write\":\"$path\"}")
    grep -q 'Read-only file system' <<<"$ans" || fail "writing $path answered $ans"
  done
  log "read-only: rapid serves with a read-only root; /tmp (tmpfs) writable, /var/task and / not"
}

check_user() {
  local port ans hp uid
  port=$(free_port)
  start user --user 1000:1000 --cap-drop ALL --security-opt no-new-privileges \
    -p "127.0.0.1:$port:8080" "$FIXTURE"
  wait_answer "$port" '{"write":"/tmp/probe"}' '"ok"'
  ans=$(invoke "$port" '{}')
  grep -qF '"gid":1000' <<<"$ans" && grep -qF '"uid":1000' <<<"$ans" || fail "the runtime runs as $ans"
  hp=$(host_pid)
  uid=$(awk '/^Uid:/ {print $2}' "/proc/$hp/status")
  [ "$uid" = 1000 ] || fail "rapid runs as uid $uid"
  [ "$(awk '/^CapEff:/ {print $2}' "/proc/$hp/status")" = 0000000000000000 ] || fail "rapid has capabilities"
  assert_pid1 /usr/local/bin/rapid
  log "user: rapid (PID 1) and the runtime run as 1000:1000, with no capabilities"
}

# Method: the runtime allocates ALLOC MiB and writes every page. REPORT's Max
# Memory Used is the peak resident memory (VmHWM) of the runtime's process
# tree. The container's cgroup reports its peak charge (v1
# memory.max_usage_in_bytes, v2 memory.peak) for every process in it: rapid +
# the runtime (+ kernel memory: page tables, sockets). rapid's share is its
# anonymous memory (RssAnon: its file-backed pages, the binary's text, are page
# cache charged to whoever read the file first, not to this cgroup; so are
# the runtime's, which VmHWM counts). So the runtime's part of the cgroup's
# peak is peak − rapid's RssAnon, and REPORT must be within 10 % of it.
check_memory() {
  local port hp dir peak_file limit_file limit report line peak rapid_anon ok
  local alloc=80
  port=$(free_port)
  start memory --memory 128m --memory-swap 128m -e AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128 \
    -p "127.0.0.1:$port:8080" "$FIXTURE"
  wait_answer "$port" '{"write":"/tmp/probe"}' '"ok"'
  hp=$(host_pid)
  if line=$(grep -E '^[0-9]+:memory:' "/proc/$hp/cgroup") && [ -d "/sys/fs/cgroup/memory${line#*:memory:}" ]; then
    dir=/sys/fs/cgroup/memory${line#*:memory:}
    peak_file=memory.max_usage_in_bytes limit_file=memory.limit_in_bytes
  elif line=$(grep -E '^0::' "/proc/$hp/cgroup") && [ -f "/sys/fs/cgroup${line#0::}/memory.peak" ]; then
    dir=/sys/fs/cgroup${line#0::}
    peak_file=memory.peak limit_file=memory.max
  else
    fail "no memory cgroup with a peak figure for the container: $(cat "/proc/$hp/cgroup")"
  fi
  limit=$(cat "$dir/$limit_file")
  [ "$limit" = 134217728 ] || fail "the container's memory limit is $limit, not 128 MiB"
  local ans id deadline
  ans=$(invoke "$port" "{\"alloc_mb\":$alloc,\"hold_ms\":200}" -D "$WORK/memory.headers")
  [ "$ans" = "{\"alloc_mb\":$alloc}" ] || fail "the allocation failed: $ans"
  id=$(awk 'tolower($1) == "x-amzn-requestid:" {print $2}' "$WORK/memory.headers" | tr -d '\r')
  [ -n "$id" ] || fail "no X-Amzn-RequestId"
  deadline=$(( $(now_ms) + 5000 ))
  until report=$(podman logs "$CTR" 2>/dev/null | grep "^REPORT RequestId: $id") && [ -n "$report" ]; do
    [ "$(now_ms)" -lt "$deadline" ] || fail "no REPORT for the allocation ($id)"
    sleep 0.05
  done
  grep -q 'Memory Size: 128 MB' <<<"$report" || fail "REPORT without Memory Size: 128 MB: $report"
  local used
  used=$(sed -n 's/.*Max Memory Used: \([0-9]*\) MB.*/\1/p' <<<"$report")
  [ -n "$used" ] || fail "no Max Memory Used in $report"
  peak=$(cat "$dir/$peak_file")
  rapid_anon=$(awk '/^RssAnon:|^RssShmem:/ {s += $2} END {print s * 1024}' "/proc/$hp/status")
  ok=$(awk -v u="$used" -v p="$peak" -v r="$rapid_anon" 'BEGIN {
    c = (p - r) / 1048576; d = u - c; if (d < 0) d = -d;
    printf "%s %.1f %.1f %.1f", (d <= 0.10 * c) ? "yes" : "no", c, 100 * d / c, r / 1048576 }')
  read -r ok cg pct rapid_mib <<<"$ok"
  figure "memory: REPORT Max Memory Used vs cgroup peak − rapid's RssAnon ($alloc MiB allocated, --memory 128m)" \
    "$used MB vs $cg MiB ($pct %)"
  [ "$used" -ge "$alloc" ] || fail "Max Memory Used $used MB is below the $alloc MiB the runtime touched"
  [ "$ok" = yes ] || fail "Max Memory Used $used MB vs the cgroup's $cg MiB for the runtime: $pct % apart (peak $peak B, rapid's RssAnon $rapid_mib MiB)"
  log "memory: REPORT $used MB, cgroup peak $(( peak / 1048576 )) MiB − rapid $rapid_mib MiB = $cg MiB for the runtime ($pct % apart)"
}

check_watchdog() {
  local port mport t0 ms body code deadline
  port=$(free_port)
  mport=$(free_port)
  t0=$(now_ms)
  start watchdog -e healthcheck_interval=2s -p "127.0.0.1:$port:8080" -p "127.0.0.1:$mport:8081" "$WATCHDOG"
  deadline=$(( t0 + 20000 ))
  until [ "$(probe "$port" /_/ready)" = 200 ]; do
    [ "$(now_ms)" -lt "$deadline" ] || fail "/_/ready never answered 200"
    sleep 0.02
  done
  ms=$(( $(now_ms) - t0 ))
  figure "watchdog image: start to /_/ready 200" "$ms ms"
  [ "$(probe "$port" /_/health)" = 200 ] || fail "/_/health: $(probe "$port" /_/health)"
  assert_pid1 /usr/bin/fwatchdog
  body=$(curl -s -m 10 -d 'hello watchdog' "http://127.0.0.1:$port/any/path")
  [ "$body" = 'hello watchdog' ] || fail "the function answered $body"
  body=$(curl -s -m 5 "http://127.0.0.1:$mport/metrics")
  grep -q '^http_requests_total{' <<<"$body" || fail "no metrics on 8081"
  # SIGTERM (what the kubelet sends): unready at once, requests still served
  # for healthcheck_interval, then exit 0.
  t0=$(now_ms)
  podman kill --signal TERM "$CTR" >/dev/null
  deadline=$(( t0 + 1500 ))
  until [ "$(probe "$port" /_/ready)" = 503 ]; do
    [ "$(now_ms)" -lt "$deadline" ] || fail "/_/ready still $(probe "$port" /_/ready) after SIGTERM"
    sleep 0.02
  done
  body=$(curl -s -m 10 -d 'while draining' "http://127.0.0.1:$port/")
  [ "$body" = 'while draining' ] || fail "a request during the drain got $body"
  code=$(timeout "$GRACE" podman wait "$CTR") || fail "no exit within $GRACE s of SIGTERM"
  [ "$code" = 0 ] || fail "exit code $code after SIGTERM"
  log "watchdog: /_/health and /_/ready 200 to kube-probe GETs after $ms ms; SIGTERM → /_/ready 503, still serving, exit 0 after $(( $(now_ms) - t0 )) ms"
}

check_lambda_rie() {
  local port ans
  # provided.al2 / .al2023: the entrypoint exports _HANDLER and passes the bootstrap alone.
  # python & co.: the handler is the last of several arguments.
  # and the brief form: aws-lambda-rie <runtime> <handler>.
  local forms=(
    "app.handler|[\"app.handler\"]|/var/runtime/bootstrap app.handler"
    "app.handler|[\"-m\",\"awslambdaric\",\"app.handler\"]|/var/runtime/bootstrap -m awslambdaric app.handler"
    "function.handler|[]|/var/runtime/bootstrap"
  )
  local n=0 form handler args argv env
  for form in "${forms[@]}"; do
    IFS='|' read -r handler args argv <<<"$form"
    env=()
    [ "$argv" = /var/runtime/bootstrap ] && env=(-e _HANDLER=function.handler)
    port=$(free_port)
    n=$(( n + 1 ))
    # shellcheck disable=SC2086
    start "rie-$n" "${env[@]}" --entrypoint /usr/local/bin/aws-lambda-rie -p "127.0.0.1:$port:8080" "$FIXTURE" $argv
    wait_answer "$port" '{"write":"/tmp/probe"}' '"ok"'
    assert_pid1 /usr/local/bin/aws-lambda-rie
    ans=$(invoke "$port" '{}')
    grep -qF "\"handler\":\"$handler\"" <<<"$ans" || fail "aws-lambda-rie $argv: _HANDLER is not $handler: $ans"
    grep -qF "\"args\":$args" <<<"$ans" || fail "aws-lambda-rie $argv: the runtime's arguments are not $args: $ans"
    podman rm -f -t 0 "$CTR" >/dev/null
    log "lambda-rie: ${env[*]:+${env[*]} }aws-lambda-rie $argv → _HANDLER=$handler, runtime args $args"
  done
}

# ---------------------------------------------------------------- run

PASSED=0
FAILED=0
FAILED_NAMES=
for CHECK in invoke orphans stop read-only user memory watchdog lambda-rie; do
  CTR=
  set +e
  ( set -e; "check_${CHECK//-/_}" )
  rc=$?
  set -e
  if [ "$rc" -eq 0 ]; then
    PASSED=$(( PASSED + 1 ))
  else
    FAILED=$(( FAILED + 1 ))
    FAILED_NAMES="$FAILED_NAMES $CHECK"
    echo "test-container: FAILED: $CHECK" >&2
  fi
  ids=$(podman ps -aq --filter "label=rapid-test=$TAG")
  # shellcheck disable=SC2086
  [ -z "$ids" ] || podman rm -f -t 0 $ids >/dev/null
done

log "figures:"
log "  image localhost/rapid (rapid + echo, FROM scratch): $IMAGE_SIZE bytes ($(awk -v s="$IMAGE_SIZE" 'BEGIN { printf "%.1f", s / 1048576 }') MiB)"
log "  image localhost/rapid-watchdog (rapid + server, FROM scratch): $WATCHDOG_SIZE bytes ($(awk -v s="$WATCHDOG_SIZE" 'BEGIN { printf "%.1f", s / 1048576 }') MiB)"
if [ -f "$WORK/figures" ]; then
  while IFS='|' read -r what value; do log "  $what: $value"; done < "$WORK/figures"
fi
[ "$FAILED" -eq 0 ] || log "failed:$FAILED_NAMES"
echo "test-container: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
