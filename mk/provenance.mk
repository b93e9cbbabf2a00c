# Provenance: keys, attestations, the embedded Rekor-format log, receipts, audit.
#
#   make bench-provenance   attestations appended per second on the embedded log
#                           (parallel uploaders) and offline verification time of a
#                           seven-stage receipt (target < 20 ms; cpu-ms/op is the
#                           CPU time per receipt, wall ns/op includes waiting for a
#                           core on a shared machine). Rekor v1 appends: bench-rekor.
.PHONY: bench-provenance
BENCH_TARGETS += bench-provenance
PROVENANCE_APPENDS ?= 2000x
PROVENANCE_RECEIPTS ?= 300x

FUZZ_TARGETS += ./provenance:FuzzVerifyReceipt ./provenance:FuzzBuildStatement

bench-provenance:
	@set -e; \
	a=$$($(GO) test -count=1 -run '^$$' -bench '^BenchmarkAppend$$' -benchtime $(PROVENANCE_APPENDS) ./provenance/tlog/embedded/ 2>&1 | grep -v '^[IWE][0-9]'); \
	v=$$($(GO) test -count=1 -run '^$$' -bench '^BenchmarkVerifyReceipt$$' -benchtime $(PROVENANCE_RECEIPTS) ./provenance/ 2>&1 | grep -v '^[IWE][0-9]'); \
	echo "$$a"; echo "$$v"; \
	echo "$$a" | awk '/^BenchmarkAppend/ { for (i = 3; i < NF; i++) if ($$(i+1) == "appends/s") printf "embedded log: %s attestations appended/s (n=%s)\n", $$i, $$2 }'; \
	echo "$$v" | awk '/^BenchmarkVerifyReceipt/ { for (i = 3; i < NF; i++) if ($$(i+1) == "cpu-ms/op") c = $$i; \
		printf "seven-stage receipt offline verification: %.2f ms wall, %s ms CPU (target < 20 ms)\n", $$3/1e6, c }'; \
	echo "$$a" | grep -q '^ok' && echo "$$v" | grep -q '^ok'
