# Model exchange (models/): fuzz targets for `make fuzz` / `make test`.
FUZZ_TARGETS += ./models:FuzzManifest ./models:FuzzConstraint ./models:FuzzCheckLicense
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
