# rapid — the commands the README names.
CARGO ?= cargo
PORT ?= 8080

.PHONY: all build run test ric test-vm bench bench-core bench-watchdog bench-pool bench-lmi bench-compare link-order lint fmt clean fuzz soak

all: build

build:
	$(CARGO) build --release -p rapid -p echo-function

## make run: build rapid and the bundled echo function, serve it on 127.0.0.1:$(PORT)
run: build
	@echo "rapid: serving examples/echo on http://127.0.0.1:$(PORT)"
	@echo "rapid: invoke it with:"
	@echo "  curl -s -d '{\"hello\":\"world\"}' http://127.0.0.1:$(PORT)/2015-03-31/functions/function/invocations"
	./target/release/rapid --runtime-interface-emulator-address 127.0.0.1:$(PORT) ./target/release/echo-function

## make test: unit tests of every crate + black-box tests of the real binary
test: ric
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast

## make ric: awslambdaric (the Python runtime client, a cp311 manylinux wheel) from PyPI
## into target/py, for tests/tests/awslambdaric.rs (python3 with venv)
RIC_VERSION ?= 4.2.2
ric:
	@target/py/bin/python -c 'import awslambdaric' 2>/dev/null || { \
	  python3 -m venv target/py && \
	  target/py/bin/pip install --quiet --disable-pip-version-check awslambdaric==$(RIC_VERSION); } || \
	  echo "make ric: cannot install awslambdaric (needs python3 with venv and PyPI); its tests are skipped, visibly"

## make test-vm: boot a microVM (qemu, Debian kernel) whose /init is rapid; invoke, shut down, power off
test-vm:
	bash vm/test-vm.sh

## make image: a static rapid and OCI images FROM scratch, with podman and no registry:
## localhost/rapid:test (rapid + examples/echo), localhost/rapid-watchdog:test (the OpenFaaS watchdog)
.PHONY: image test-container
image:
	bash container/build-image.sh

## make test-container: the images under podman + runc, rapid as PID 1: invoke, orphans, stop,
## read-only root, --user, memory limit vs REPORT, watchdog probes, aws-lambda-rie argv
test-container:
	bash container/test-container.sh

## make bench: latency / throughput / memory / cold start, written to docs/benchmarks.md
bench: bench-core bench-watchdog bench-pool bench-lmi

bench-core:
	$(CARGO) build --release --workspace --bins
	./target/release/rapid-bench --rapid ./target/release/rapid --function ./target/release/echo-function --stream-function ./target/release/fx-stream --out docs/benchmarks.md

## make bench-pool: the pool of sandboxes (--concurrency, one-shot standby, RSS per sandbox, cold start on demand)
bench-pool:
	$(CARGO) build --release --workspace --bins
	./target/release/rapid-bench pool --rapid ./target/release/rapid --function ./target/release/echo-function --sleeper ./target/release/fx-lambda --out docs/benchmarks.md

## make bench-lmi: Lambda Managed Instances mode (lambda_runtime run_concurrent, 5 ms, 8 clients) against the classic one,
## and the classic path's warm p50 beside LMI_BASE's (the commit before issue 14), alternated in one run
LMI_BASE ?= f97726f
bench-lmi:
	$(CARGO) build --release --workspace --bins
	bash bench/build-base.sh $(LMI_BASE)
	./target/release/rapid-bench lmi --rapid ./target/release/rapid --function ./target/release/fx-lmi --base ./target/bench-base/release/rapid --echo ./target/release/echo-function --out docs/benchmarks.md

## make bench-watchdog: the watchdog modes with wrk (installed with apt-get when missing)
bench-watchdog:
	@command -v wrk >/dev/null 2>&1 || { echo "bench: installing wrk"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk; }
	$(CARGO) build --release --workspace --bins
	./target/release/rapid-bench watchdog --rapid ./target/release/rapid --inproc ./target/release/inproc-function --out docs/benchmarks.md

## make bench-compare BASE=<commit>: the new binaries beside those of BASE, alternated in one run
BASE ?= 28aca77
LABEL ?= this change against $(BASE)
bench-compare:
	@command -v wrk >/dev/null 2>&1 || { echo "bench: installing wrk"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk; }
	$(CARGO) build --release --workspace --bins
	bash bench/build-base.sh $(BASE)
	./target/release/rapid-bench compare --rapid ./target/release/rapid --base ./target/bench-base/release/rapid --function ./target/release/echo-function --inproc ./target/release/inproc-function --base-inproc ./target/bench-base/release/inproc-function --label "$(LABEL)" --out docs/benchmarks.md

## make link-order: rewrite rapid/link-order.txt, the functions rapid runs at start-up and on
## warm invokes, which the linker lays out together (valgrind; redo after large changes there)
link-order:
	bash bench/link-order.sh

## make fuzz: every cargo-fuzz target for FUZZ_SECONDS (default 60) each; nightly + cargo-fuzz
FUZZ_SECONDS ?= 60
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash fuzz/run.sh

## make soak: 10^6 sequential + 10^5 concurrent invokes (RSS, fds sampled) and a chaos run
## (runtimes and extensions killed/stopped, slow/half-closed/reset clients, stalled uploads,
## EMFILE), every answer checked; figures to docs/benchmarks.md (Reliability). Not part of make test.
## (The binaries come from $CARGO_TARGET_DIR when it is set.)
SOAK_ARGS ?=
SOAK_BIN = $(or $(CARGO_TARGET_DIR),target)/release
soak:
	$(CARGO) build --release -p rapid -p echo-function -p rapid-bench
	$(SOAK_BIN)/rapid-bench soak --rapid $(SOAK_BIN)/rapid --function $(SOAK_BIN)/echo-function --out docs/benchmarks.md $(SOAK_ARGS)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
