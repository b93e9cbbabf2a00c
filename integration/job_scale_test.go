package integration

import (
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/market/providers"
	"github.com/accordmesh/accord/workers/jobclient"
	"github.com/accordmesh/accord/workers/local"
	"github.com/accordmesh/accord/workers/stack"
	"github.com/accordmesh/accord/workflows"
)

// Temporal's history warning thresholds: a history past either is logged by
// the server and nears the hard limits (51,200 events, 50 MiB).
const (
	historyWarnEvents = 10_240
	historyWarnBytes  = 10 << 20
)

// TestJobScale runs a spec of ACCORD_SCALE_TASKS no-op tasks to settlement
// on the embedded stack and reports the history it took: the job's own and
// each JobBatch child's, every one under Temporal's warning thresholds, and
// the bytes per task. `make test` runs 1,100 tasks (three batches; 2 to 15
// minutes depending on the host: 0.1 to 0.9 s a task was measured on this
// project's machines); `make scale-workflow` runs 5,000. A no-op task may
// run 3 minutes: on a slow host, 256 containers starting together take
// more than one.
func TestJobScale(t *testing.T) {
	n := 2*workflows.BatchSize + 100
	if v, err := strconv.Atoi(os.Getenv("ACCORD_SCALE_TASKS")); err == nil && v > 0 {
		n = v
	}
	image := needStack(t)
	home := newHome(t)
	fund(t, home, "scale", 100_000)
	// The local pool reserves every task's CPU and memory at once; no-op
	// tasks use a fraction of either, so the pool offers what the job asks
	// (--overcommit), and the workflow still runs at most 256 at a time.
	const milliCPU, memBytes = 1, 32 << 20 // runc init runs inside the memory limit: 16 MiB is too tight for it
	mem, err := providers.MemTotal()
	if err != nil {
		t.Fatal(err)
	}
	over := math.Max(float64(n*milliCPU)/float64(runtime.NumCPU()*1000), float64(n*memBytes)/float64(mem))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := stack.Start(ctx, stack.Options{Home: home, Local: local.Options{Overcommit: math.Max(1, 1.25*over), AutoCreateTenants: true, HostInputs: hostInputs()}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop()
	var tasks strings.Builder
	for i := range n {
		tasks.WriteString(trainerTask(fmt.Sprintf("t%05d", i), image, []string{"trainer", "prepare", "--samples", "2"},
			fmt.Sprintf("  resources: {cpu: %dm, memory: %dMiB, max_duration: 3m}\n", milliCPU, memBytes>>20)))
	}
	spec := writeSpec(t, t.TempDir(), specDoc{Name: "scale", Tenant: "scale", Tasks: tasks.String(), MaxPrice: 50_000})
	start := time.Now()
	sub, err := jobclient.Submit(ctx, st.Client, spec, "")
	if err != nil {
		t.Fatal(err)
	}
	res := result(t, st.Client, sub.JobID, 40*time.Minute)
	elapsed := time.Since(start)
	if res.Status != workflows.StatusSettled || res.TaskCounts[workflows.TaskSucceeded] != n {
		t.Fatalf("job %s: %s %s, tasks %v", sub.JobID, res.Status, res.Error, res.TaskCounts)
	}
	if len(res.Attestations) != 7 {
		t.Errorf("attestations %d, want 7", len(res.Attestations))
	}
	ledgerCheck(t, home)
	ids := []string{sub.JobID}
	for i := 0; i*workflows.BatchSize < n && n > workflows.BatchSize; i++ {
		ids = append(ids, sub.JobID+".batch."+strconv.Itoa(i))
	}
	totalEvents, totalBytes := 0, 0
	for _, id := range ids {
		events, bytes := historySize(t, st.Client, id)
		t.Logf("history %s: %d events, %d bytes", id, events, bytes)
		if events > historyWarnEvents || bytes > historyWarnBytes {
			t.Errorf("history %s: %d events, %d bytes: past Temporal's warning thresholds", id, events, bytes)
		}
		totalEvents, totalBytes = totalEvents+events, totalBytes+bytes
	}
	fmt.Printf("scale: %d tasks settled in %v (%.0f tasks/min); %d executions, %d events, %d bytes of history: %d bytes/task\n",
		n, elapsed.Round(time.Second), float64(n)/elapsed.Minutes(), len(ids), totalEvents, totalBytes, totalBytes/n)
}
