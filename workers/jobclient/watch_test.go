package jobclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/accordmesh/accord/workflows"
)

// fakeClient answers Watch's two calls: the status query (a fresh decode
// of status each time, as from the server) and the job's result, which
// waits for finish (or ctx) like a real workflow run's Get.
type fakeClient struct {
	client.Client // other methods are not called

	status  workflows.JobStatus
	result  workflows.JobResult
	finish  chan struct{}
	mu      sync.Mutex
	queries int
	// finishAfter closes finish after that many queries (0: never).
	finishAfter int
	getReturned chan struct{}
}

func (f *fakeClient) QueryWorkflow(_ context.Context, _, _, _ string, _ ...any) (converter.EncodedValue, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries++
	if f.queries == f.finishAfter {
		close(f.finish)
	}
	b, err := json.Marshal(f.status)
	return jsonValue(b), err
}

func (f *fakeClient) GetWorkflow(context.Context, string, string) client.WorkflowRun {
	return fakeRun{f}
}

type fakeRun struct{ f *fakeClient }

func (fakeRun) GetID() string                  { return "job-1" }
func (fakeRun) GetRunID() string               { return "run-1" }
func (fakeRun) GetFirstExecutionRunID() string { return "run-1" }

func (r fakeRun) Get(ctx context.Context, ptr any) error {
	if r.f.getReturned != nil {
		defer close(r.f.getReturned)
	}
	select {
	case <-r.f.finish:
		*ptr.(*workflows.JobResult) = r.f.result
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r fakeRun) GetWithOptions(ctx context.Context, ptr any, _ client.WorkflowRunGetOptions) error {
	return r.Get(ctx, ptr)
}

type jsonValue []byte

func (v jsonValue) HasValue() bool        { return len(v) > 0 }
func (v jsonValue) Get(ptr any) error     { return json.Unmarshal(v, ptr) }
func (v jsonValue) String() string        { return string(v) }
func (v jsonValue) Format() fmt.Formatter { return nil }

// Unchanged progress is reported once, however the status's task map
// iterates; the end is reported with the result.
func TestWatchReportsChangesOnce(t *testing.T) {
	st := workflows.JobStatus{JobID: "job-1", Status: workflows.StatusRunning, Stage: "execute", Tasks: map[string]workflows.TaskStatus{}}
	for i := range 12 {
		st.Tasks[fmt.Sprintf("task-%02d", i)] = workflows.TaskStatus{State: "running", Attempt: 1}
	}
	f := &fakeClient{
		status: st, finish: make(chan struct{}), finishAfter: 40,
		result: workflows.JobResult{JobID: "job-1", Status: workflows.StatusSettled, Stage: "settle"},
	}
	var seen []workflows.JobStatus
	res, err := Watch(context.Background(), f, "job-1", time.Millisecond, func(s workflows.JobStatus) { seen = append(seen, s) })
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != workflows.StatusSettled {
		t.Errorf("result %+v", res)
	}
	if len(seen) != 2 || seen[0].Status != workflows.StatusRunning || len(seen[0].Tasks) != 12 || seen[1].Status != workflows.StatusSettled {
		t.Fatalf("%d reports after %d identical queries, want the running status once and the end", len(seen), f.queries)
	}
}

func TestStatusKeyOrder(t *testing.T) {
	a := workflows.JobStatus{Status: "running", Stage: "execute", Tasks: map[string]workflows.TaskStatus{
		"b": {State: "running", Attempt: 2}, "a": {State: "exited", Attempt: 1}, "c": {State: "pending"},
	}}
	want := "running/execute/a=exited:1/b=running:2/c=pending:0"
	for range 50 {
		if got := statusKey(a); got != want {
			t.Fatalf("key %q, want %q", got, want)
		}
	}
	b := a
	b.Tasks = map[string]workflows.TaskStatus{"a": {State: "exited", Attempt: 1}, "b": {State: "running", Attempt: 3}, "c": {State: "pending"}}
	if statusKey(b) == want {
		t.Errorf("a new attempt does not change the key")
	}
}

// Watch returns on ctx without reading what the result's waiter writes
// afterwards (run with -race).
func TestWatchCancelled(t *testing.T) {
	f := &fakeClient{status: workflows.JobStatus{Status: workflows.StatusRunning}, finish: make(chan struct{}), getReturned: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	res, err := Watch(ctx, f, "job-1", time.Millisecond, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if res.Status != "" {
		t.Errorf("a cancelled watch returned a result: %+v", res)
	}
	<-f.getReturned                   // the waiter stores its outcome right after
	time.Sleep(20 * time.Millisecond) // and the race detector sees it
}
