# Rekor v1 test stack (MariaDB → Trillian → rekor-server, scripts/services/rekor.sh)
# and the transparency-log append benchmark.
#
#   make rekor-tools   build trillian/rekor binaries into .cache/tools/bin (~13 min cold)
#   make rekor-up      start the stack; its env lines land in .cache/services/rekor.env
#   make rekor-down    stop it
#   make bench-rekor   attestations appended per second, embedded log and Rekor v1
#                      in the same run (starts the stack unless it is running)
.PHONY: rekor-tools rekor-up rekor-down bench-rekor
BENCH_TARGETS += bench-rekor
FUZZ_TARGETS += ./provenance/tlog/rekorapi:FuzzHandler
REKOR_BENCHTIME ?= 200x

rekor-tools:
	scripts/rekor-tools.sh

rekor-up:
	@mkdir -p .cache/services; : > .cache/services/rekor.env
	scripts/services/rekor.sh start .cache/services/rekor.env
	@cat .cache/services/rekor.env

rekor-down:
	scripts/services/rekor.sh stop

bench-rekor:
	@set -e; mkdir -p .cache/services; envf=.cache/services/bench-rekor.env; : > $$envf; started=; \
	if [ -z "$$ACCORD_TEST_REKOR_URL" ]; then \
		if scripts/services/rekor.sh status > $$envf; then :; else \
			scripts/install-deps.sh; started=1; : > $$envf; \
			scripts/services/rekor.sh start $$envf; \
		fi; \
		set -a; . ./$$envf; set +a; \
	fi; \
	trap 'if [ -n "$$started" ]; then scripts/services/rekor.sh stop; fi' EXIT; \
	out=$$($(GO) test -count=1 -run '^$$' -bench '^BenchmarkAppend$$' -benchtime $(REKOR_BENCHTIME) ./provenance/tlog/rekorv1/ 2>&1 | grep -v '^[IWE][0-9]'); \
	echo "$$out"; \
	echo "$$out" | awk '/^BenchmarkAppend\// { split($$1, n, "/"); sub(/-[0-9]+$$/, "", n[3]); \
		for (i = 3; i < NF; i++) if ($$(i+1) == "attestations/s") v = $$i; \
		printf "tlog append: %s %s %s attestations/s (n=%s)\n", n[2], n[3], v, $$2 }'; \
	echo "$$out" | grep -q '^ok' || exit 1
