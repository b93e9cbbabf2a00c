package integration

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"

	"github.com/accordmesh/accord/workers/jobclient"
	"github.com/accordmesh/accord/workflows"
)

const bareQueue = "bench-bare"

// bareWorkflow runs n no-op activities one after another: the floor any
// n-activity workflow pays on this server.
func bareWorkflow(ctx workflow.Context, n int) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	for i := 0; i < n; i++ {
		if err := workflow.ExecuteActivity(ctx, "NoOp", i).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

func noOp(context.Context, int) error { return nil }

// bareActivities is the baseline's length: the 15 activities a job of the
// first layout scheduled one after another (compile, admit, negotiate,
// place, start, wait, verify, settle and seven attestations).
const bareActivities = 15

// TestJobBenchOverhead is `make bench-workflow`: ACCORD_BENCH_JOBS trivial
// jobs (make's default 1000) on the embedded stack, overhead = submit→settled
// minus the container's own run time, p50/p95, jobs/min and history bytes
// per job; then the same number of bare workflows of bareActivities no-op
// activities on the same server; prints the ratios (target ≤ 1.0).
func TestJobBenchOverhead(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ACCORD_BENCH_JOBS"))
	if n <= 0 {
		t.Skip("benchmark: set ACCORD_BENCH_JOBS (make bench-workflow)")
	}
	image := needStack(t)
	home := newHome(t)
	fund(t, home, "bench", 1_000_000)
	st := startStack(t, home, 0, false)
	defer st.Stop()
	spec := writeSpec(t, t.TempDir(), specDoc{Name: "trivial", Tenant: "bench",
		Tasks: trainerTask("noop", image, []string{"trainer", "prepare", "--samples", "10"},
			"  outputs: [dataset.csv]\n  resources: {cpu: 100m, memory: 64MiB, max_duration: 1m}\n")})
	ctx := context.Background()
	const concurrency = 4

	// Warm up: image import, first SQLite pages, log files.
	warm, err := jobclient.Submit(ctx, st.Client, spec, "")
	if err != nil {
		t.Fatal(err)
	}
	if res := result(t, st.Client, warm.JobID, 2*time.Minute); res.Status != workflows.StatusSettled {
		t.Fatalf("warm-up job: %+v", res)
	}
	activities := bareActivities

	overhead := make([]time.Duration, n)
	ids := make([]string, n)
	start := time.Now()
	runAll(t, n, concurrency, func(i int) error {
		t0 := time.Now()
		sub, err := jobclient.Submit(ctx, st.Client, spec, "")
		if err != nil {
			return err
		}
		ids[i] = sub.JobID
		res, err := jobclient.Result(ctx, st.Client, sub.JobID)
		if err != nil {
			return err
		}
		total := time.Since(t0)
		if res.Status != workflows.StatusSettled {
			return fmt.Errorf("job %s: %s %s", sub.JobID, res.Status, res.Error)
		}
		task := res.Tasks["noop"]
		overhead[i] = total - task.FinishedAt.Sub(*task.StartedAt)
		return nil
	})
	accordElapsed := time.Since(start)
	events, bytes := 0, 0
	for _, id := range ids {
		e, b := historySize(t, st.Client, id)
		events, bytes = events+e, bytes+b
	}

	w := worker.New(st.Client, bareQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(bareWorkflow, workflow.RegisterOptions{Name: "bench.Bare"})
	w.RegisterActivityWithOptions(noOp, activity.RegisterOptions{Name: "NoOp"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	bare := make([]time.Duration, n)
	start = time.Now()
	runAll(t, n, concurrency, func(i int) error {
		t0 := time.Now()
		run, err := st.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: bareQueue}, "bench.Bare", activities)
		if err != nil {
			return err
		}
		if err := run.Get(ctx, nil); err != nil {
			return err
		}
		bare[i] = time.Since(t0)
		return nil
	})
	bareElapsed := time.Since(start)

	ap50, ap95 := pct(overhead, 50), pct(overhead, 95)
	bp50, bp95 := pct(bare, 50), pct(bare, 95)
	fmt.Printf("bench-workflow: %d jobs, concurrency %d, %d activities per job\n", n, concurrency, activities)
	fmt.Printf("accord job overhead (submit→settled minus container time): p50 %v p95 %v, throughput %.1f jobs/min\n",
		ap50.Round(time.Millisecond), ap95.Round(time.Millisecond), float64(n)/accordElapsed.Minutes())
	fmt.Printf("bare workflow (%d no-op activities):                      p50 %v p95 %v, throughput %.1f jobs/min\n",
		activities, bp50.Round(time.Millisecond), bp95.Round(time.Millisecond), float64(n)/bareElapsed.Minutes())
	fmt.Printf("history per job: %d events, %d bytes\n", events/n, bytes/n)
	fmt.Printf("ratio accord/bare: p50 %.2f p95 %.2f (target ≤ 1.0)\n", float64(ap50)/float64(bp50), float64(ap95)/float64(bp95))
}

func runAll(t *testing.T, n, concurrency int, fn func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, concurrency)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(i); err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func pct(ds []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	return s[i-1]
}

// historySize is a workflow's history length in events and in bytes (the
// events' encoded size, as the server stores them).
func historySize(t *testing.T, c client.Client, workflowID string) (events, bytes int) {
	t.Helper()
	iter := c.GetWorkflowHistory(context.Background(), workflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		events++
		bytes += proto.Size(ev)
	}
	return events, bytes
}
