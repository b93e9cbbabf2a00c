package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/market/queue"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/predicate"
	"github.com/accordmesh/accord/workers"
	"github.com/accordmesh/accord/workers/stack"
	"github.com/accordmesh/accord/workflows"
)

// TestMarketBatchClearing: three batch-mode specs submitted with `accord
// submit` queue themselves; `accord market schedule create` makes the
// Temporal schedule, whose MarketClearing run clears all three together
// in one auction (one record naming all three jobs, which each job's
// negotiation attestation carries); each job runs and settles, and
// `accord ledger check` is clean.
func TestMarketBatchClearing(t *testing.T) {
	image := needStack(t)
	bin := accordBinary(t)
	home := newHome(t)
	st := startStack(t, home, 0, false)
	defer st.Stop()
	accord := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append(args, "--home", home)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("accord %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	addr := st.Server.Address()
	dir := t.TempDir()
	var jobs []string
	for _, name := range []string{"batch-a", "batch-b", "batch-c"} {
		fund(t, home, "team-"+name, 1000)
		task := trainerTask("prepare", image, []string{"trainer", "prepare", "--samples", "500", "--seed", "4"},
			"  outputs: [dataset.csv]\n  resources: {cpu: 250m, memory: 128MiB, max_duration: 5m}\n")
		spec := writeSpec(t, dir, specDoc{Name: name, Tasks: task})
		appendFile(t, spec, "\n## Negotiation\n\n```yaml\nprotocol: auction\nmode: batch\nbatch_wait: 5m\n```\n")
		var sub struct {
			JobID string `json:"job_id"`
		}
		if err := json.Unmarshal([]byte(accord("submit", spec, "--json", "--temporal-address", addr)), &sub); err != nil || sub.JobID == "" {
			t.Fatalf("submit %s: %v", name, err)
		}
		jobs = append(jobs, sub.JobID)
	}
	// All three wait in the queue before any clearing runs.
	q, err := queue.Open(queue.DefaultDir(home))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "three queued jobs", func() bool {
		es, _, err := q.List(context.Background(), 0)
		return err == nil && len(es) == 3
	})
	accord("market", "schedule", "create", "--every", "2s", "--temporal-address", addr)
	accord("market", "schedule", "create", "--every", "2s", "--temporal-address", addr) // idempotent
	for _, id := range jobs {
		if res := result(t, st.Client, id, 5*time.Minute); res.Status != workflows.StatusSettled {
			t.Fatalf("job %s: %+v", id, res)
		}
	}
	var desc workers.ClearingSchedule
	if err := json.Unmarshal([]byte(accord("market", "schedule", "describe", "--json", "--temporal-address", addr)), &desc); err != nil ||
		desc.EveryS != "2s" || desc.Actions == 0 {
		t.Fatalf("describe: %+v %v", desc, err)
	}
	accord("market", "schedule", "delete", "--temporal-address", addr)

	// One clearing delivered all three.
	clearing := oneClearing(t, st, home, jobs)
	for _, id := range jobs {
		var neg predicate.Negotiation
		rc, err := provenance.BuildReceipt(context.Background(), id, st.Local.Provenance, st.Local.Log)
		if err != nil {
			t.Fatal(err)
		}
		stagePredicate(t, rc, provenance.StageNegotiation, &neg)
		var rec market.Result
		if err := json.Unmarshal(neg.Record, &rec); err != nil {
			t.Fatalf("%s: negotiation record: %v", id, err)
		}
		if !sameSet(rec.Jobs, jobs) || len(rec.Awards) == 0 || rec.Awards[0].Job != id || neg.Provider != rec.Awards[0].Provider {
			t.Errorf("%s: negotiation %+v, record jobs %v awards %+v", id, neg, rec.Jobs, rec.Awards)
		}
	}
	if es, _, _ := q.List(context.Background(), 0); len(es) != 0 {
		t.Errorf("queue keeps %d entries after delivery", len(es))
	}
	t.Logf("clearing %s placed %v", clearing, jobs)
	if out := accord("ledger", "check"); !strings.Contains(strings.ToLower(out), "ok") {
		t.Errorf("ledger check: %s", out)
	}
	ledgerCheck(t, home)
	recordHistory(t, st.Client, jobs[0], "job_batch")
}

// oneClearing finds the clearing run that delivered every job at once and
// checks its record, stored by digest in the artifact store, names them
// all; it returns the digest.
func oneClearing(t *testing.T, st *stack.Stack, home string, jobs []string) string {
	t.Helper()
	ctx := context.Background()
	var runs []string
	var token []byte
	for {
		resp, err := st.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: "WorkflowType = '" + workflows.ClearingWorkflowName + "'", NextPageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.GetExecutions() {
			runs = append(runs, e.GetExecution().GetWorkflowId())
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	for _, id := range runs {
		var res workflows.ClearingResult
		if err := st.Client.GetWorkflow(ctx, id, "").Get(ctx, &res); err != nil || len(res.Delivered) == 0 {
			continue
		}
		if !sameSet(res.Delivered, jobs) || !sameSet(res.Jobs, jobs) {
			t.Fatalf("clearing %s delivered %v of %v: the jobs were not cleared together", id, res.Delivered, res.Jobs)
		}
		raw, err := artifacts.Local{Dir: artifacts.DefaultDir(home)}.Get(ctx, res.Clearing, 16<<20)
		if err != nil {
			t.Fatal(err)
		}
		var b market.Batch
		if err := json.Unmarshal(raw, &b); err != nil || !sameSet(b.Result.Jobs, jobs) || len(b.Result.Awards) < len(jobs) {
			t.Fatalf("clearing record %s: %v %+v", res.Clearing, err, b.Result)
		}
		return res.Clearing
	}
	t.Fatalf("no clearing among %d runs delivered the jobs", len(runs))
	return ""
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}
