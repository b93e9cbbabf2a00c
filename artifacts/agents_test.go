package artifacts

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A split job is awarded to several agents: each may push its outputs,
// and every output is granted to all of them (a part downstream reads it)
// and to the tenant; a later award replaces the set.
func TestAwardJobToParts(t *testing.T) {
	ctx := context.Background()
	s := Local{Dir: t.TempDir()}
	if err := s.AwardJobTo("job-1", "acme", []string{"gpu-a", "gpu-b"}); err != nil {
		t.Fatal(err)
	}
	provs, tenant, err := s.JobAward("job-1")
	if err != nil || tenant != "acme" || !slices.Equal(provs, []string{"gpu-a", "gpu-b"}) {
		t.Fatalf("award %v %q %v", provs, tenant, err)
	}
	path := filepath.Join(t.TempDir(), "out.txt")
	if err := os.WriteFile(path, []byte("from a"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := s.PutOutput(ctx, "job-1", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"gpu-a", "gpu-b"} {
		if ok, err := s.AgentOwns(p, "acme", res.Digest); !ok || err != nil {
			t.Errorf("%s owns the output: %v %v", p, ok, err)
		}
	}
	if ok, _ := s.AgentReads("gpu-c", res.Digest); ok {
		t.Error("an agent outside the award reads the output")
	}
	if err := s.AwardJob("job-1", "gpu-c", "acme"); err != nil {
		t.Fatal(err)
	}
	if provs, _, _ := s.JobAward("job-1"); !slices.Equal(provs, []string{"gpu-c"}) {
		t.Errorf("after a new award: %v", provs)
	}
	for name, provs := range map[string][]string{"none": nil, "twice": {"gpu-a", "gpu-a"}, "bad name": {"../x"}} {
		if err := s.AwardJobTo("job-2", "acme", provs); err == nil {
			t.Errorf("%s: award accepted", name)
		}
	}
	if _, _, err := s.JobAward("job-2"); !errors.Is(err, ErrNoAward) {
		t.Errorf("refused award recorded: %v", err)
	}
}
