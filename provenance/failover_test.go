package provenance

import (
	"fmt"
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

// A split job's part failover moves only its part; one without tasks moves
// every part on the lost provider; a failover from a provider no part is
// on, or for tasks that are no part's, breaks the chain.
func TestExecutingParts(t *testing.T) {
	parts := []predicate.Part{
		{Provider: "gpu-a", Pool: "p", Runtime: "containerd", Tasks: []string{"prep", "eval"}, Price: 100},
		{Provider: "gpu-b", Tasks: []string{"train"}, Price: 200},
		{Provider: "gpu-a", Tasks: []string{"export"}, Price: 50},
	}
	providers := func(ps []predicate.Part) string {
		var s []string
		for _, p := range ps {
			s = append(s, fmt.Sprintf("%s:%d", p.Provider, p.Price))
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		fs   []predicate.Failover
		want string
		why  string
	}{
		{want: "gpu-a:100,gpu-b:200,gpu-a:50"},
		{fs: []predicate.Failover{{Lost: "gpu-b", Provider: "gpu-c", Price: 150, Tasks: []string{"train"}}}, want: "gpu-a:100,gpu-c:150,gpu-a:50"},
		// Tasks in another order still name the part.
		{fs: []predicate.Failover{{Lost: "gpu-a", Provider: "gpu-c", Price: 90, Tasks: []string{"eval", "prep"}}}, want: "gpu-c:90,gpu-b:200,gpu-a:50"},
		{fs: []predicate.Failover{{Lost: "gpu-a", Provider: "gpu-c", Price: 90}}, want: "gpu-c:90,gpu-b:200,gpu-c:90"},
		{fs: []predicate.Failover{{Lost: "gpu-b", Provider: "gpu-c", Price: 150, Tasks: []string{"train"}}, {Lost: "gpu-c", Provider: "gpu-d", Price: 160, Tasks: []string{"train"}}},
			want: "gpu-a:100,gpu-d:160,gpu-a:50"},
		{fs: []predicate.Failover{{Lost: "gpu-a", Provider: "gpu-c", Tasks: []string{"train"}}}, want: "gpu-a:100,gpu-b:200,gpu-a:50", why: `abandons provider "gpu-a", the part with tasks [train] was on "gpu-b"`},
		{fs: []predicate.Failover{{Lost: "gpu-b", Provider: "gpu-c", Tasks: []string{"prep"}}}, want: "gpu-a:100,gpu-b:200,gpu-a:50", why: "which are no part's tasks"},
		{fs: []predicate.Failover{{Lost: "gpu-x", Provider: "gpu-c"}}, want: "gpu-a:100,gpu-b:200,gpu-a:50", why: "no part was on it"},
		{fs: []predicate.Failover{{Lost: "gpu-b", Provider: "gpu-b", Tasks: []string{"train"}}}, want: "gpu-a:100,gpu-b:200,gpu-a:50", why: "names no other"},
	} {
		got, why := ExecutingParts(parts, tc.fs)
		if providers(got) != tc.want || (tc.why == "") != (why == "") || !strings.Contains(why, tc.why) {
			t.Errorf("%+v: %s %q, want %s %q", tc.fs, providers(got), why, tc.want, tc.why)
		}
	}
	// The parts given are not changed; a moved part's pool and runtime are
	// no longer known.
	got, _ := ExecutingParts(parts, []predicate.Failover{{Lost: "gpu-a", Provider: "gpu-c", Tasks: []string{"prep", "eval"}}})
	if parts[0].Provider != "gpu-a" || got[0].Pool != "" || got[0].Runtime != "" {
		t.Errorf("parts %+v, moved %+v", parts[0], got[0])
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
