# Nomad pools: inventory arithmetic and placement benchmarks, BuildJob fuzzing.
#
#   make bench-nomad   free-capacity computation for a 1000-node, 8000-GPU
#                      cluster (one inventory refresh) and one Pick in it.
#   make test-nomad    the runtime suite against a real agent; needs NOMAD_ADDR
#                      (no Nomad agent runs in CI; see docs/nomad.md).
.PHONY: bench-nomad test-nomad nomad-double
BENCH_TARGETS += bench-nomad
FUZZ_TARGETS += ./runtimes/nomad:FuzzBuildJob

bench-nomad:
	$(GO) test -count=1 -run '^$$' -bench '^Benchmark(Compute|Pick)$$' -benchmem ./runtimes/nomad/

test-nomad:
	@test -n "$$NOMAD_ADDR" || { echo "NOMAD_ADDR is not set: point it at a Nomad agent (e.g. nomad agent -dev)"; exit 1; }
	$(GO) test -count=1 -v -run '^TestNomadAgent$$' ./integration/

# nomad-double serves the HTTP API double with a few GPU nodes for manual trials.
nomad-double:
	$(GO) run ./runtimes/nomad/nomadtest/nomad-double
