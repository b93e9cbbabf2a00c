package integration

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/accordmesh/accord/runtimes/nomad"
	"github.com/accordmesh/accord/runtimes/nomad/nomadtest"
	"github.com/accordmesh/accord/runtimes/nomad/pools"
)

// TestNomadAgent runs the Nomad runtime's portable suite — the same cases
// the unit tests run against the HTTP API double — against a real Nomad
// agent. No Nomad agent runs in this project's CI (Nomad is not packaged in
// Debian and nothing may be downloaded), so it runs only when NOMAD_ADDR is
// set, e.g. with `nomad agent -dev` (which has the docker driver when Docker
// is installed):
//
//	NOMAD_ADDR=http://127.0.0.1:4646 go test ./integration -run TestNomadAgent -v
//
// Optional: NOMAD_TOKEN, ACCORD_NOMAD_NODE_POOL, ACCORD_NOMAD_DRIVER
// (docker or exec), ACCORD_NOMAD_IMAGE (default busybox:1.36; it needs sh).
func TestNomadAgent(t *testing.T) {
	addr := os.Getenv("NOMAD_ADDR")
	if addr == "" {
		t.Skip("NOMAD_ADDR is not set: no real Nomad agent to test against (none runs in this project's CI; see docs/nomad.md)")
	}
	cfg := nomad.Config{
		Pool: "integration", Address: addr, Token: os.Getenv("NOMAD_TOKEN"),
		NodePool: os.Getenv("ACCORD_NOMAD_NODE_POOL"), Driver: os.Getenv("ACCORD_NOMAD_DRIVER"),
	}
	rt, err := nomad.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rt.Ping(ctx); err != nil {
		t.Fatalf("NOMAD_ADDR=%s is set but the agent does not answer: %v", addr, err)
	}
	t.Run("Attach", func(t *testing.T) {
		sum, err := pools.Attach(ctx, pools.Open(t.TempDir()), "integration", cfg, "")
		if err != nil {
			t.Fatal(err)
		}
		if sum.Nodes == 0 || sum.Health == "unreachable" {
			t.Fatalf("attach summary: %+v", sum)
		}
	})
	nomadtest.RunSuite(t, nomadtest.Harness{Runtime: rt, Image: os.Getenv("ACCORD_NOMAD_IMAGE"), Timeout: 5 * time.Minute})
}
