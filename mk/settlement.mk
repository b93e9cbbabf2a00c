# settlement: the ledger benchmark, settled jobs per second on SQLite and on
# PostgreSQL in the same run. Starts the private PostgreSQL cluster
# (scripts/services/postgres.sh) unless ACCORD_TEST_PG_DSN is already set or
# it is already running, and stops it afterwards only if it started it.
.PHONY: bench-settlement
BENCH_TARGETS += bench-settlement
SETTLEMENT_BENCHTIME ?= 2000x
FUZZ_TARGETS += ./settlement:FuzzInput

bench-settlement:
	@set -e; mkdir -p .cache/services; envf=.cache/services/bench-settlement.env; : > $$envf; started=; \
	if [ -z "$$ACCORD_TEST_PG_DSN" ]; then \
		scripts/install-deps.sh; \
		scripts/services/postgres.sh status || started=1; \
		scripts/services/postgres.sh start $$envf; \
		set -a; . ./$$envf; set +a; \
	fi; \
	trap 'if [ -n "$$started" ]; then scripts/services/postgres.sh stop; fi' EXIT; \
	out=$$($(GO) test -count=1 -run '^$$' -bench '^BenchmarkSettle$$' -benchtime $(SETTLEMENT_BENCHTIME) ./settlement/); \
	echo "$$out"; \
	echo "$$out" | awk '/^BenchmarkSettle\// { split($$1, n, "/"); sub(/-[0-9]+$$/, "", n[2]); \
		printf "settlement: %s settled %s jobs/s (n=%s)\n", n[2], $$5, $$2 }'
