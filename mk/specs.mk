# Spec language (specs/): fuzz target for `make fuzz` / `make test`, and the
# parse+compile benchmark for `make bench`.
FUZZ_TARGETS  += ./specs:FuzzParse
BENCH_TARGETS += bench-specs

# bench-specs: parse + compose + validate + compile of generated specs with
# 50, 500 and 5000 tasks; ns/op should grow linearly (compare cpu-ns/task,
# which is robust against a loaded machine).
.PHONY: bench-specs
bench-specs:
	$(GO) test ./specs -run '^$$' -bench '^BenchmarkCompile$$' -benchtime $(or $(SPECS_BENCHTIME),5x) -count 1

# lint-examples: every example must lint clean; every invalid one must fail.
.PHONY: lint-examples
lint-examples: build
	$(BIN) spec lint examples/*.md
	@for f in examples/invalid/*.md; do \
		if $(BIN) spec lint $$f >/dev/null 2>&1; then echo "$$f: linted clean, want errors"; exit 1; fi; \
	done; echo "examples/invalid: every file fails as expected"
