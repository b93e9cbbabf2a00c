# Model exchange (models/): fuzz targets for `make fuzz` / `make test`.
FUZZ_TARGETS += ./models:FuzzManifest ./models:FuzzConstraint ./models:FuzzCheckLicense

# bench-models: push/pull throughput of a MODEL_BENCH_MIB MiB model (default
# 1 GiB of random weights) with Accord's registry client and with skopeo copy
# (an OCI layout of the same ModelPack artifact), against one docker-registry
# on loopback in the same run; prints MB/s for each and the ratio
# accord/skopeo (higher is better for Accord). Needs Debian docker-registry
# and skopeo (scripts/deps/models.txt) and about 4 × the model size of disk.
.PHONY: bench-models
BENCH_TARGETS += bench-models
MODEL_BENCH_MIB ?= 1024
bench-models: bench-models-search
	@mkdir -p .cache; ACCORD_BENCH_MODEL_MIB=$(MODEL_BENCH_MIB) $(GO) test -count=1 -timeout 30m -run '^TestBenchPushPull$$' -v ./models/registry/ \
		>.cache/bench-models.log 2>&1 || { cat .cache/bench-models.log; exit 1; }; \
		grep -E '^bench models' .cache/bench-models.log

FUZZ_TARGETS += ./models/search:FuzzParseQuery

# bench-models-search: search latency over 10,000 generated manifests, the
# index against a naive scan that decodes and tokenises every manifest per
# query (measured in the same run); prints ns/query for both and the ratio.
.PHONY: bench-models-search
BENCH_TARGETS += bench-models-search
MODELS_SEARCH_BENCHTIME ?= 2s

bench-models-search:
	@set -e; \
	out=$$($(GO) test -count=1 -run '^$$' -bench '^BenchmarkSearch$$' -benchtime $(MODELS_SEARCH_BENCHTIME) ./models/search/); \
	echo "$$out"; echo "$$out" | grep -q '^search over' && echo "$$out" | grep -q '^ok'
