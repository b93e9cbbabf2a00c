package broker

import (
	"context"
	"strings"
	"testing"

	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/policies"
)

// TestClearBatch: three queued jobs clear in one auction; the job whose
// tenant's policy refuses the local pool is placed on the remote one (or
// not at all), never on local, and every award's record names all three
// jobs while carrying only its own awards.
func TestClearBatch(t *testing.T) {
	pol, err := policies.Parse("no-local-secret.yaml", []byte(`policy: no-local-secret
version: 1
rules:
  - name: secret-not-local
    on: placement
    expr: spec.name != "secret" || provider.name != "local"
    message: secret jobs stay off the local pool
`))
	if err != nil {
		t.Fatal(err)
	}
	set := &policies.Set{Policies: []*policies.Policy{pol}}
	remote := localProvider(16000)
	remote.P.Name, remote.P.Region = "remote", "eu-west-1"
	b := Broker{Providers: sellers(localProvider(16000), remote), Runtime: map[string]string{"remote": "nomad"},
		DefaultRuntime: "containerd", Placement: set.PlacementFilter}
	secret := quickstartPlan(t)
	secret.Spec.Name, secret.Name = "secret", "secret"
	jobs := []BatchJob{{ID: "job-a", Plan: quickstartPlan(t)}, {ID: "job-b", Plan: quickstartPlan(t)}, {ID: "job-c", Plan: secret}}
	cl, err := b.ClearBatch(context.Background(), jobs, market.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cl.Awards)+len(cl.Unplaced) != 3 || len(cl.Awards) == 0 {
		t.Fatalf("awards %v unplaced %v", cl.Awards, cl.Unplaced)
	}
	for id, aw := range cl.Awards {
		if id == "job-c" && aw.Provider == "local" {
			t.Errorf("job-c placed on local against its policy")
		}
		if want := map[string]string{"local": "containerd", "remote": "nomad"}[aw.Provider]; aw.Runtime != want {
			t.Errorf("%s: runtime %s on %s", id, aw.Runtime, aw.Provider)
		}
		if aw.Result == nil || len(aw.Result.Jobs) != 3 || len(aw.Result.Awards) == 0 {
			t.Fatalf("%s: record %+v", id, aw.Result)
		}
		for _, a := range aw.Result.Awards {
			if a.Job != id {
				t.Errorf("%s's record carries %s's award", id, a.Job)
			}
		}
		for _, o := range aw.Result.Offers {
			if o.Provider == "local" && id == "job-c" && len(o.Jobs) == 1 {
				t.Errorf("local made job-c an offer despite the policy")
			}
		}
	}
	var policy bool
	for _, d := range cl.Batch.Result.Diagnostics {
		if d.Job == "job-c" && d.Provider == "local" && d.Constraint == "policy" && strings.Contains(d.Detail, "secret-not-local") {
			policy = true
		}
	}
	if !policy {
		t.Errorf("no policy diagnostic for job-c on local: %+v", cl.Batch.Result.Diagnostics)
	}
}

// TestClearBatchNoOffers: a market that can place none of the jobs is an
// outcome, every job unplaced with the reasons.
func TestClearBatchNoOffers(t *testing.T) {
	b := Broker{Providers: sellers(localProvider(100)), DefaultRuntime: "containerd"}
	cl, err := b.ClearBatch(context.Background(), []BatchJob{{ID: "a", Plan: quickstartPlan(t)}, {ID: "b", Plan: quickstartPlan(t)}}, market.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cl.Awards) != 0 || len(cl.Unplaced) != 2 || !strings.Contains(cl.Unplaced["a"], "local") {
		t.Fatalf("awards %v unplaced %v", cl.Awards, cl.Unplaced)
	}
}
