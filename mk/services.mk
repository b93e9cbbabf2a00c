# Deployments (issue 24): recording the deployment workflow's histories and
# the endpoint proxy's benchmark.
.PHONY: record-deployment-histories bench-serve

# record-deployment-histories adds the current deployment layout's histories
# (workflows/testdata/deployment_lifecycle_layoutN.json and, from layout 3,
# deployment_model_layoutN.json, listed in histories.sha256) from real runs:
# TestDeploymentOnContainerd and TestDeploymentServesModel (with a real
# docker-registry) on real containerd, CNI and an embedded Temporal. Never overwrites one: a change
# to the workflow's commands needs a new layout first (docs/workflows.md).
# Needs root, containerd, runc, containernetworking-plugins and docker-registry.
record-deployment-histories:
	ACCORD_RECORD_HISTORIES=1 $(GO) test -count=1 -timeout 15m -run '^(TestDeploymentOnContainerd|TestDeploymentServesModel)$$' ./integration/

# bench-serve: requests/s and p50/p99 of predictions through the endpoint
# proxy against the same two example-server replicas hit directly, in the
# same run, with the server answering at once and with SERVE_BENCH_DELAY of
# model time; prints the overhead ratio at p50 and pass/fail against 10 %.
BENCH_TARGETS += bench-serve
SERVE_BENCH_SECONDS ?= 20
SERVE_BENCH_CONCURRENCY ?= 8
SERVE_BENCH_DELAY ?= 2ms
bench-serve:
	@mkdir -p .cache; ACCORD_BENCH_SERVE_SECONDS=$(SERVE_BENCH_SECONDS) ACCORD_BENCH_SERVE_CONCURRENCY=$(SERVE_BENCH_CONCURRENCY) \
		ACCORD_BENCH_SERVE_DELAY=$(SERVE_BENCH_DELAY) $(GO) test -count=1 -timeout 10m -run '^TestServeBench$$' -v ./integration/ \
		> .cache/bench-serve.log 2>&1; rc=$$?; \
		grep -E '^(=== RUN|--- |bench-serve|PASS|FAIL|ok)' .cache/bench-serve.log; \
		[ $$rc = 0 ] || echo "bench-serve failed: see .cache/bench-serve.log"; exit $$rc
