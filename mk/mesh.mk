# The mesh on several hosts (network namespaces of this machine): the
# integration test of issue 21 and its throughput benchmark. Both need root,
# containerd, runc, iproute2, nsenter and Debian's PostgreSQL; they build
# the Temporal tools when missing (scripts/temporal-tools.sh).
.PHONY: test-mesh bench-mesh

# test-mesh: TestMesh (a receipt with the parties' keys and a witness, a
# provider agent SIGKILLed mid-task, the Temporal server restarted mid-job,
# MESH_JOBS small jobs over two providers; default 300).
MESH_JOBS ?= 300
test-mesh: $(TRAINER_TAR)
	ACCORD_MESH_JOBS=$(MESH_JOBS) $(GO) test -count=1 -timeout 60m -run '^TestMesh$$' -v ./integration/

# bench-mesh: jobs/min of MESH_BENCH_N small jobs with one provider agent and
# with two on the same control plane, in the same run, and the ratio.
BENCH_TARGETS += bench-mesh
MESH_BENCH_N ?= 100
bench-mesh: $(TRAINER_TAR)
	@mkdir -p .cache; ACCORD_BENCH_MESH_JOBS=$(MESH_BENCH_N) $(GO) test -count=1 -timeout 60m -run '^TestMeshBench$$' -v ./integration/ \
		> .cache/bench-mesh.log 2>&1; rc=$$?; \
		grep -E '^(=== RUN|--- |bench-mesh|PASS|FAIL|ok)' .cache/bench-mesh.log; \
		[ $$rc = 0 ] || echo "bench-mesh failed: see .cache/bench-mesh.log"; exit $$rc
