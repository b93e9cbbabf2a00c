# Durable jobs (workflows/, activities/, workers/): `make run` and the
# orchestration-overhead benchmark.
.PHONY: run bench-workflow record-histories scale-workflow

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
	@mkdir -p .cache; ACCORD_BENCH_JOBS=$(WORKFLOW_BENCH_N) $(GO) test -count=1 -timeout 60m -run '^TestJobBenchOverhead$$' -v ./integration/ \
		> .cache/bench-workflow.log 2>&1; rc=$$?; \
		grep -E '^(=== RUN|--- |bench|PASS|FAIL|ok)|overhead|ratio|jobs/min|history' .cache/bench-workflow.log; \
		[ $$rc = 0 ] || echo "bench-workflow failed: see .cache/bench-workflow.log"; exit $$rc

# scale-workflow: a spec of SCALE_TASKS no-op tasks (default 5,000) to
# settlement on the embedded stack, with the history of the job and of each
# batch child, and bytes per task. Needs root, containerd and runc.
SCALE_TASKS ?= 5000
scale-workflow: $(TRAINER_TAR)
	@mkdir -p .cache; ACCORD_SCALE_TASKS=$(SCALE_TASKS) $(GO) test -count=1 -timeout 90m -run '^TestJobScale$$' -v ./integration/ \
		> .cache/scale-workflow.log 2>&1; rc=$$?; \
		grep -E '^(=== RUN|--- |PASS|FAIL|ok)|^ +job_scale_test|^scale:' .cache/scale-workflow.log; \
		[ $$rc = 0 ] || echo "scale-workflow failed: see .cache/scale-workflow.log"; exit $$rc

# record-histories adds the current layout's histories that the replay tests
# use (workflows/testdata/job_NAME_layoutN.json, listed in histories.sha256)
# from real runs on the embedded stack. It never overwrites one: a change to
# the workflow's commands needs a new layout first (docs/workflows.md).
record-histories: $(TRAINER_TAR)
	ACCORD_RECORD_HISTORIES=1 $(GO) test -count=1 -timeout 30m \
		-run '^(TestJob(DAGEndToEnd|ApprovalGate|CancelMidExecution|RetryThenFail)|TestModelExchange|TestProviderAgent|TestProviderFailover|TestProviderLostBeforePlacement|TestSpotCheckCheat|TestMCPAgentBargain|TestMarketBatchClearing)$$' ./integration/
