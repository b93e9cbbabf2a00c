# Durable jobs (workflows/, activities/, workers/): `make run` and the
# orchestration-overhead benchmark.
.PHONY: run bench-workflow record-histories

# run builds accord, makes sure containerd and runc are present (installing
# them when root), builds the example image and runs the quickstart through
# every stage to a settled, attested result.
run: build $(RUN_PREREQS)
	scripts/run.sh

# bench-workflow: orchestration overhead per job (submit→settled minus
# container time) p50/p95 over WORKFLOW_BENCH_N trivial jobs on the embedded
# stack, and jobs/min, next to a bare Temporal workflow running the same
# number of no-op activities on the same server in the same run; prints the
# ratio (target ≤ 1.0) and history bytes per job. Needs root, containerd and runc.
BENCH_TARGETS += bench-workflow
WORKFLOW_BENCH_N ?= 1000
bench-workflow: $(TRAINER_TAR)
	ACCORD_BENCH_JOBS=$(WORKFLOW_BENCH_N) $(GO) test -count=1 -timeout 60m -run '^TestJobBenchOverhead$$' -v ./integration/ 2>&1 \
		| grep -E '^(=== RUN|--- |bench|PASS|FAIL|ok)|overhead|ratio|jobs/min'

# record-histories re-records the workflow histories the replay tests use
# (workflows/testdata/*.json) from real runs on the embedded stack.
record-histories: $(TRAINER_TAR)
	ACCORD_RECORD_HISTORIES=1 $(GO) test -count=1 -timeout 30m -run '^TestJob' ./integration/
