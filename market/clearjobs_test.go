package market

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestClearJobsForJob clears synthetic jobs with one provider excluded for
// the first job, and checks each job's part of the record: the excluded
// provider made that job no offer (a "policy" diagnostic instead), and
// ForJob keeps every job's name, only bids naming the job, winners among
// them, and offer indices that point at the job's offers.
func TestClearJobsForJob(t *testing.T) {
	provs, jobsDir := synthetic(t, 12, 4)
	plans, names, err := LoadJobs(jobsDir)
	if err != nil {
		t.Fatal(err)
	}
	p0, err := provs[0].Profile(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	jobs := make([]BatchJob, len(plans))
	for i := range plans {
		jobs[i] = BatchJob{Name: names[i], Plan: plans[i]}
	}
	jobs[0].Exclude = map[string]string{p0.Name: "tenant rule"}
	b, err := ClearJobs(context.Background(), jobs, provs, Options{TimeLimit: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	placed := 0
	for _, name := range names {
		part := b.Result.ForJob(name)
		if !slices.Equal(part.Jobs, b.Result.Jobs) || len(part.Jobs) != 12 {
			t.Fatalf("%s: jobs %v", name, part.Jobs)
		}
		for _, bid := range part.Bids {
			if !slices.Contains(bid.Jobs, name) {
				t.Errorf("%s: bid %v does not name it", name, bid.Jobs)
			}
			for _, o := range bid.Offers {
				if o < 0 || o >= len(part.Offers) || !slices.Contains(bid.Providers, part.Offers[o].Provider) {
					t.Errorf("%s: bid offer index %d of %d", name, o, len(part.Offers))
				}
			}
		}
		for _, w := range part.Winners {
			if w < 0 || w >= len(part.Bids) {
				t.Errorf("%s: winner %d of %d bids", name, w, len(part.Bids))
			}
		}
		for _, a := range part.Awards {
			if a.Job != name {
				t.Errorf("%s: carries %s's award", name, a.Job)
			}
		}
		if len(part.Awards) > 0 {
			placed++
		}
		if name != names[0] {
			continue
		}
		for _, o := range part.Offers {
			if o.Provider == p0.Name && len(o.Jobs) == 1 {
				t.Errorf("excluded provider %s offered for %s", p0.Name, name)
			}
		}
		if !slices.ContainsFunc(part.Diagnostics, func(d Diagnostic) bool {
			return d.Provider == p0.Name && d.Constraint == "policy" && d.Detail == "tenant rule"
		}) {
			t.Errorf("%s: no policy diagnostic: %+v", name, part.Diagnostics)
		}
	}
	if placed == 0 || placed > len(b.Result.Awards) {
		t.Errorf("%d jobs placed, %d awards", placed, len(b.Result.Awards))
	}
}
