package provenance

import (
	"strings"
	"testing"

	"github.com/accordmesh/accord/provenance/predicate"
)

// The provider that must sign a job's execution follows its failovers from
// the negotiated one; a failover that does not start from the provider
// running the tasks, or names no other, breaks the chain.
func TestExecutingProvider(t *testing.T) {
	for _, tc := range []struct {
		fs   []predicate.Failover
		want string
		why  string
	}{
		{want: "gpu-a"},
		{fs: []predicate.Failover{{Lost: "gpu-a", Provider: "gpu-b"}}, want: "gpu-b"},
		{fs: []predicate.Failover{{Lost: "gpu-a", Provider: "gpu-b"}, {Lost: "gpu-b", Provider: "gpu-c"}}, want: "gpu-c"},
		{fs: []predicate.Failover{{Lost: "gpu-x", Provider: "gpu-b"}}, want: "gpu-a", why: "abandons provider \"gpu-x\""},
		{fs: []predicate.Failover{{Lost: "gpu-a", Provider: "gpu-a"}}, want: "gpu-a", why: "names no other"},
	} {
		got, why := ExecutingProvider("gpu-a", tc.fs)
		if got != tc.want || (tc.why == "") != (why == "") || !strings.Contains(why, tc.why) {
			t.Errorf("%+v: %q %q, want %q %q", tc.fs, got, why, tc.want, tc.why)
		}
	}
}

// After a reversed spot check the job verifies the majority's outputs: the
// run of the provider it paid.
func TestSpotOutputs(t *testing.T) {
	sc := &predicate.SpotCheck{Verdict: predicate.SpotReversed, Majority: "sha256:good", Paid: "gpu-b", Runs: []predicate.SpotRun{
		{Role: predicate.SpotPrimary, Provider: "gpu-a", OutputsDigest: "sha256:bad",
			Outputs: map[string][]predicate.OutputArtifact{"train": {{Path: "m.json", SHA256: "BAD"}}}},
		{Role: predicate.SpotCheckRun, Provider: "gpu-b", OutputsDigest: "sha256:good",
			Outputs: map[string][]predicate.OutputArtifact{"train": {{Path: "m.json", SHA256: "GOOD"}}}},
	}}
	got := spotOutputs(sc)
	if len(got) != 1 || got["train:m.json"] != "sha256:good" {
		t.Errorf("spotOutputs = %v", got)
	}
}

// A job is billed at the last failover's price, or after a reversed spot
// check at the price and usage of the run it settled with.
func TestBilled(t *testing.T) {
	neg := NegotiationPredicate{Provider: "gpu-a", Price: 500}
	ex := ExecutionPredicate{Tasks: map[string]predicate.TaskRun{"train": {Usage: predicate.Usage{WallSeconds: 20}}}}
	if p, u := billed(neg, ex, true, VerificationPredicate{}, true); p != 500 || len(u) != 1 || u[0].WallSeconds != 20 {
		t.Errorf("plain: %d %v", p, u)
	}
	ex.Failovers = []predicate.Failover{{Lost: "gpu-a", Provider: "gpu-b", Price: 300}}
	if p, _ := billed(neg, ex, true, VerificationPredicate{}, true); p != 300 {
		t.Errorf("after failover: %d, want 300", p)
	}
	ver := VerificationPredicate{SpotCheck: &predicate.SpotCheck{Verdict: predicate.SpotReversed, Majority: "sha256:good", Paid: "gpu-c",
		Runs: []predicate.SpotRun{
			{Role: predicate.SpotPrimary, Provider: "gpu-b", OutputsDigest: "sha256:bad", Price: 300},
			{Role: predicate.SpotCheckRun, Provider: "gpu-c", OutputsDigest: "sha256:good", Price: 2,
				Usage: map[string]predicate.Usage{"train": {WallSeconds: 5}}},
		}}}
	if p, u := billed(neg, ex, true, ver, true); p != 2 || len(u) != 1 || u[0].WallSeconds != 5 {
		t.Errorf("reversed: %d %v", p, u)
	}
}
