# containerd runtime: the example workload image and the start→exit→cleanup benchmark.
.PHONY: images bench-containerd

TRAINER_TAR := examples/images/trainer.tar
TRAINER_SRC := $(wildcard examples/images/*.go examples/images/trainer/*.go examples/images/build/*.go runtimes/containerd/ocilayout/*.go)
SERVER_TAR  := examples/images/server.tar
SERVER_SRC  := $(wildcard examples/images/*.go examples/images/server/*.go examples/images/build/*.go runtimes/containerd/ocilayout/*.go)

# images builds the trainer workload and the example model server (static,
# CGO_ENABLED=0) into OCI archives.
images: $(TRAINER_TAR) $(SERVER_TAR)
$(TRAINER_TAR): $(TRAINER_SRC) go.mod
	$(GO) run ./examples/images/build -o $@
$(SERVER_TAR): $(SERVER_SRC) go.mod
	$(GO) run ./examples/images/build -image server -o $@

RUN_PREREQS += $(TRAINER_TAR)

# bench-containerd runs a trivial container through Accord and through
# `ctr run --rm` on the same private daemon and image, interleaved, and
# prints the ratio (target ≤ 1.2). Needs root, containerd, runc, ctr, busybox-static.
BENCH_TARGETS += bench-containerd
CONTAINERD_BENCH_N ?= 20
bench-containerd:
	@set -e; out=$$($(GO) test -count=1 -run '^$$' -bench '^BenchmarkStartExitCleanup$$' \
		-benchtime $(CONTAINERD_BENCH_N)x ./runtimes/containerd/); echo "$$out"; \
	echo "$$out" | awk '/^BenchmarkStartExitCleanup/ { \
		printf "containerd start→exit→cleanup (n=%s): accord %s ms, ctr run --rm %s ms, ratio %s (target ≤ 1.2)\n", $$2, $$3, $$5, $$7 }'
