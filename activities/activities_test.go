package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/market/broker"
	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/specs"
	"github.com/accordmesh/accord/workflows"
)

// fakeRuntime is an in-memory runtime for unit tests: a task "runs" until
// finish is called.
type fakeRuntime struct {
	mu       sync.Mutex
	tasks    map[string]*fakeTask
	starts   int
	cleanups int
	stops    int
	prepares atomic.Int32
}

type fakeTask struct {
	spec   runtimes.TaskSpec
	status runtimes.Status
	done   chan struct{}
	files  map[string]string
}

func newFake() *fakeRuntime { return &fakeRuntime{tasks: map[string]*fakeTask{}} }

func (f *fakeRuntime) Name() string { return "fake" }
func (f *fakeRuntime) Prepare(_ context.Context, image string) (string, error) {
	f.prepares.Add(1)
	time.Sleep(time.Millisecond)
	if strings.Contains(image, "missing") {
		return "", runtimes.ErrImage
	}
	return "sha256:abc", nil
}
func (f *fakeRuntime) Start(_ context.Context, s runtimes.TaskSpec) (runtimes.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.tasks[s.ID]; ok {
		return t.status, nil
	}
	f.starts++
	t := &fakeTask{spec: s, status: runtimes.Status{ID: s.ID, State: runtimes.StateRunning}, done: make(chan struct{}), files: map[string]string{}}
	f.tasks[s.ID] = t
	return t.status, nil
}
func (f *fakeRuntime) finish(id string, code int, files map[string]string) {
	f.mu.Lock()
	t := f.tasks[id]
	t.status.State, t.status.ExitCode = runtimes.StateExited, code
	t.status.Usage = runtimes.Usage{WallSeconds: 2, CPUSeconds: 1}
	t.files = files
	f.mu.Unlock()
	close(t.done)
}
func (f *fakeRuntime) get(id string) (*fakeTask, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tasks[id]
	if !ok {
		return nil, runtimes.ErrNotFound
	}
	return t, nil
}
func (f *fakeRuntime) Status(_ context.Context, id string) (runtimes.Status, error) {
	t, err := f.get(id)
	if err != nil {
		return runtimes.Status{}, err
	}
	return t.status, nil
}
func (f *fakeRuntime) Wait(ctx context.Context, id string) (runtimes.Status, error) {
	t, err := f.get(id)
	if err != nil {
		return runtimes.Status{}, err
	}
	select {
	case <-t.done:
		return f.Status(ctx, id)
	case <-ctx.Done():
		return runtimes.Status{}, ctx.Err()
	}
}
func (f *fakeRuntime) Logs(context.Context, string, bool) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader("hello from the task\n")), nil
}
func (f *fakeRuntime) Stop(_ context.Context, id string, _ time.Duration) error {
	t, err := f.get(id)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.stops++
	if !t.status.State.Terminal() {
		t.status.State = runtimes.StateKilled
		close(t.done)
	}
	f.mu.Unlock()
	return nil
}
func (f *fakeRuntime) Collect(_ context.Context, id, dir string) ([]runtimes.Output, error) {
	t, err := f.get(id)
	if err != nil {
		return nil, err
	}
	var out []runtimes.Output
	for p, content := range t.files {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(content), 0o644); err != nil {
			return nil, err
		}
		d, _ := fileDigest(filepath.Join(dir, p))
		out = append(out, runtimes.Output{Path: p, SHA256: d, Size: int64(len(content)), Local: filepath.Join(dir, p)})
	}
	return out, nil
}
func (f *fakeRuntime) Cleanup(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups++
	delete(f.tasks, id)
	return nil
}

// testImage stands for the quickstart's trainer archive: the fake runtime
// runs no image, and a registry reference needs no --host-inputs root.
const testImage = "registry.example/trainer@sha256:1111111111111111111111111111111111111111111111111111111111111111"

func quickstartPlan(t *testing.T) (*specs.Plan, json.RawMessage) {
	t.Helper()
	plan, _, err := SpecCompiler{}.Compile(context.Background(), "../examples/quickstart.md")
	if err != nil {
		t.Fatalf("compile quickstart: %v", err)
	}
	for i := range plan.Tasks {
		plan.Tasks[i].Image = testImage
	}
	for i := range plan.Spec.Tasks {
		plan.Spec.Tasks[i].Image = testImage
	}
	raw, _ := json.Marshal(plan)
	return plan, raw
}

func appErrType(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Type()
	}
	return ""
}

func TestCompileQuickstart(t *testing.T) {
	a := &Activities{Compiler: SpecCompiler{}}
	out, err := a.Compile(context.Background(), workflows.CompileInput{JobID: "job-1", SpecPath: "../examples/quickstart.md"})
	if err != nil {
		t.Fatal(err)
	}
	p := out.Plan
	if p.Name != "quickstart" || p.Tenant != "demo" || len(p.Tasks) != 1 || !p.HasTests {
		t.Fatalf("summary %+v", p)
	}
	if p.Tasks[0].Attempts != 2 || p.Tasks[0].Backoff != 5*time.Second || p.Tasks[0].MaxDuration != 5*time.Minute {
		t.Errorf("task %+v", p.Tasks[0])
	}
	var plan specs.Plan
	if err := json.Unmarshal(out.PlanJSON, &plan); err != nil {
		t.Fatal(err)
	}
	img := plan.Tasks[0].Image
	if !strings.HasPrefix(img, "oci-archive:/") || !strings.HasSuffix(img, "examples/images/trainer.tar") {
		t.Errorf("image not made absolute: %s", img)
	}
}

func TestCompileErrors(t *testing.T) {
	a := &Activities{Compiler: SpecCompiler{}}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.md")
	if err := os.WriteFile(bad, []byte("---\naccord: v1\nname: x\n---\n# nothing\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := a.Compile(context.Background(), workflows.CompileInput{JobID: "job-1", SpecPath: bad})
	if appErrType(err) != workflows.ErrTypeInvalidSpec {
		t.Errorf("invalid spec: %v (type %q)", err, appErrType(err))
	}
	_, err = a.Compile(context.Background(), workflows.CompileInput{JobID: "job-1", SpecPath: "../examples/quickstart.md", DocumentDigest: "sha256:00"})
	if appErrType(err) != workflows.ErrTypeInvalidSpec || !strings.Contains(err.Error(), "changed since submission") {
		t.Errorf("digest mismatch: %v", err)
	}
}

func localProvider(cpu int64) market.Provider {
	return &market.Static{P: market.Profile{
		Name: "local", Region: "local", Reputation: 1,
		Free:    market.Capacity{MilliCPU: cpu, MemoryBytes: 8 << 30, DiskBytes: 64 << 30},
		Pricing: market.Pricing{Currency: "USD", CPUHour: 4, MemoryGiBHour: 1},
		SLA:     market.SLAOffer{MaxRefundPercent: 100, MaxSlashPercent: 100, Stake: 300},
	}}
}

// The adapter carries the broker's award over and turns "no offers" into
// the activity's no-offers outcome (the broker's own cases are tested in
// market/broker).
func TestMarketNegotiator(t *testing.T) {
	plan, raw := quickstartPlan(t)
	m := MarketNegotiator{Broker: broker.Broker{
		Providers:      func(context.Context) ([]market.Provider, error) { return []market.Provider{localProvider(4000)}, nil },
		DefaultRuntime: "containerd",
		Assign: func(_ context.Context, provider string, plan *specs.Plan) ([]broker.TaskDevices, error) {
			return []broker.TaskDevices{{Task: plan.Tasks[0].Name, Node: provider + "-n1"}}, nil
		},
	}}
	aw, err := m.Negotiate(context.Background(), "job-1", plan)
	if err != nil {
		t.Fatal(err)
	}
	if aw.Provider != "local" || aw.Pool != "local" || aw.Runtime != "containerd" || aw.Price <= 0 || aw.Price > plan.Spec.Budget.MaxPrice ||
		aw.Currency != "USD" || len(aw.Devices) != 1 || aw.Devices[0].Node != "local-n1" {
		t.Errorf("award %+v", aw)
	}
	if _, ok := aw.Record.(*market.Result); !ok {
		t.Errorf("record %T, want *market.Result", aw.Record)
	}
	if aw.SLA == nil || aw.SLA.Stake != 300 || aw.SLA.RefundPercent != plan.Spec.Settlement.SLA.RefundPercent {
		t.Errorf("agreed SLA %+v", aw.SLA)
	}
	// A provider too small for the task cannot bid: no offers, with the reason.
	m.Broker.Providers = func(context.Context) ([]market.Provider, error) { return []market.Provider{localProvider(100)}, nil }
	a := &Activities{Negotiator: m}
	_, err = a.Negotiate(context.Background(), workflows.NegotiateInput{JobID: "job-1", PlanInput: workflows.PlanInput{PlanJSON: raw}})
	if appErrType(err) != workflows.ErrTypeNoOffers || !strings.Contains(err.Error(), "local") {
		t.Errorf("activity error type %q: %v", appErrType(err), err)
	}
}

func TestStartWaitCollect(t *testing.T) {
	_, raw := quickstartPlan(t)
	rt := newFake()
	a := &Activities{Runtimes: map[string]runtimes.Runtime{"fake": rt}, JobsDir: t.TempDir()}
	ctx := context.Background()
	award := workflows.NegotiateOutput{Runtime: "fake"}
	run := workflows.RunID("job-1", "train", 1)
	in := workflows.StartTaskInput{JobID: "job-1", Task: "train", Attempt: 1, RunID: run, PlanInput: workflows.PlanInput{PlanJSON: raw}, Award: award}
	if _, err := a.StartTask(ctx, in); err != nil {
		t.Fatal(err)
	}
	// A retried start re-attaches: one container.
	if _, err := a.StartTask(ctx, in); err != nil || rt.starts != 1 {
		t.Fatalf("restart: %v, starts %d", err, rt.starts)
	}
	spec := rt.tasks[run].spec
	if spec.OutputDir != "/out" || strings.Join(spec.Command, " ") != "trainer train --samples 2000 --epochs 50 --seed 7" {
		t.Errorf("task spec %+v", spec)
	}
	// The window elapses while the task runs: retryable, slot returned.
	w := workflows.WaitTaskInput{JobID: "job-1", Task: "train", RunID: run, Runtime: "fake", Window: 20 * time.Millisecond}
	_, err := a.WaitTask(ctx, w)
	if appErrType(err) != workflows.ErrTypeStillRunning {
		t.Fatalf("still running: %v", err)
	}
	rt.finish(run, 0, map[string]string{"metrics.json": `{"accuracy": 0.93}`})
	out, err := a.WaitTask(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	if out.State != "exited" || len(out.Outputs) != 1 || out.Outputs[0].Path != "metrics.json" || out.Usage.WallSeconds != 2 {
		t.Fatalf("result %+v", out)
	}
	if rt.cleanups != 1 {
		t.Errorf("cleanups %d", rt.cleanups)
	}
	if b, err := os.ReadFile(a.LogPath("job-1", run)); err != nil || !strings.Contains(string(b), "hello") {
		t.Errorf("log kept: %q %v", b, err)
	}
	// A wait retried after cleanup (worker died before reporting) answers
	// from the recorded result.
	again, err := a.WaitTask(ctx, w)
	if err != nil || again.State != out.State || len(again.Outputs) != 1 {
		t.Fatalf("replayed wait: %+v %v", again, err)
	}
}

func TestStopTaskIdempotent(t *testing.T) {
	rt := newFake()
	a := &Activities{Runtimes: map[string]runtimes.Runtime{"fake": rt}, JobsDir: t.TempDir()}
	ctx := context.Background()
	if _, err := rt.Start(ctx, runtimes.TaskSpec{ID: "job-1.train.1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.StopTask(ctx, workflows.StopTaskInput{RunID: "job-1.train.1", Runtime: "fake"}); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := rt.Status(ctx, "job-1.train.1"); !errors.Is(err, runtimes.ErrNotFound) {
		t.Fatalf("stopped run still there: %v", err)
	}
	if _, err := a.StopTask(ctx, workflows.StopTaskInput{RunID: "job-1.train.1", Runtime: "fake"}); err != nil {
		t.Fatalf("second stop must be a no-op: %v", err)
	}
}

func TestStartPermanentErrors(t *testing.T) {
	plan, _ := quickstartPlan(t)
	plan.Tasks[0].Image = "registry.example/missing@sha256:" + strings.Repeat("2", 64)
	raw, _ := json.Marshal(plan)
	a := &Activities{Runtimes: map[string]runtimes.Runtime{"fake": newFake()}, JobsDir: t.TempDir()}
	_, err := a.StartTask(context.Background(), workflows.StartTaskInput{JobID: "job-1", Task: "train", RunID: "job-1.train.1", PlanInput: workflows.PlanInput{PlanJSON: raw}, Award: workflows.NegotiateOutput{Runtime: "fake"}})
	if appErrType(err) != workflows.ErrTypeExecution {
		t.Errorf("missing image: %v", err)
	}
	_, err = a.StartTask(context.Background(), workflows.StartTaskInput{JobID: "job-1", Task: "train", RunID: "job-1.train.1", PlanInput: workflows.PlanInput{PlanJSON: raw}, Award: workflows.NegotiateOutput{Runtime: "nomad"}})
	if appErrType(err) != workflows.ErrTypeExecution {
		t.Errorf("unknown runtime: %v", err)
	}
}

func TestVerifyThresholds(t *testing.T) {
	plan, _ := quickstartPlan(t)
	// Metrics-only test (the command test needs a real container).
	plan.Spec.Verification.Tests[0].Command = nil
	raw, _ := json.Marshal(plan)
	a := &Activities{Runtimes: map[string]runtimes.Runtime{"fake": newFake()}, JobsDir: t.TempDir()}
	dir := a.OutputsDir("job-1", "train")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	in := workflows.VerifyInput{JobID: "job-1", PlanInput: workflows.PlanInput{PlanJSON: raw}, Award: workflows.NegotiateOutput{Runtime: "fake"},
		Tasks: map[string]workflows.TaskStatus{"train": {State: workflows.TaskSucceeded}}}
	for _, c := range []struct {
		metrics string
		pass    bool
	}{{`{"accuracy": 0.93}`, true}, {`{"accuracy": 0.5}`, false}, {`{"loss": 1}`, false}, {`not json`, false}} {
		if err := os.WriteFile(filepath.Join(dir, "metrics.json"), []byte(c.metrics), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := a.Verify(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if out.Passed != c.pass {
			t.Errorf("%s: passed %v, want %v (%+v)", c.metrics, out.Passed, c.pass, out.Tests)
		}
	}
	in.Tasks["train"] = workflows.TaskStatus{State: workflows.TaskFailed}
	out, err := a.Verify(context.Background(), in)
	if err != nil || out.Passed {
		t.Errorf("failed task verified: %+v %v", out, err)
	}
}

func TestRuntimeErrCancelledIsRetryable(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := runtimeErr(ctx, "prepare", fmt.Errorf("%w: import: context canceled", runtimes.ErrImage))
	if appErrType(err) != "" {
		t.Errorf("an import cut short by shutdown must be retried, got type %q", appErrType(err))
	}
	err = runtimeErr(context.Background(), "prepare", fmt.Errorf("%w: no such file", runtimes.ErrImage))
	if appErrType(err) != workflows.ErrTypeExecution {
		t.Errorf("a missing image is permanent, got %v", err)
	}
}

type fakeLedger struct {
	released, settled int
	short             bool  // Cover reports insufficient funds
	shares            error // CheckShares' answer
}

func (f *fakeLedger) CheckShares(*specs.Plan) error { return f.shares }

func (f *fakeLedger) Cover(_ context.Context, tenant, currency string, amount int64) error {
	if f.short {
		return fmt.Errorf("%w: tenant %s cannot escrow %d %s", ErrInsufficient, tenant, amount, currency)
	}
	return nil
}

func (f *fakeLedger) Hold(context.Context, HoldRequest) (int64, string, any, error) {
	return 0, "", nil, nil
}
func (f *fakeLedger) Release(context.Context, string) (int64, error) { f.released++; return 120, nil }
func (f *fakeLedger) Settle(context.Context, SettleRequest) (int64, int64, any, error) {
	f.settled++
	return 100, 20, nil, nil
}

type fakeQuota struct {
	released []string
	consumed map[string]int64
}

func (f *fakeQuota) Release(_ context.Context, job string) error {
	f.released = append(f.released, job)
	return nil
}
func (f *fakeQuota) Consume(_ context.Context, job string, spend int64, _ float64) error {
	f.consumed[job] = spend
	return nil
}

// Release refunds escrow and frees the quota reservation; settlement turns
// the reservation into what was actually paid.
func TestReleaseAndSettleQuota(t *testing.T) {
	_, raw := quickstartPlan(t)
	l, q := &fakeLedger{}, &fakeQuota{consumed: map[string]int64{}}
	a := &Activities{Ledger: l, Quota: q}
	out, err := a.Release(context.Background(), workflows.ReleaseInput{JobID: "job-1"})
	if err != nil || out.Refunded != 120 || l.released != 1 || len(q.released) != 1 {
		t.Fatalf("release: %+v %v ledger %d quota %v", out, err, l.released, q.released)
	}
	st, err := a.Settle(context.Background(), workflows.SettleInput{JobID: "job-2", PlanInput: workflows.PlanInput{PlanJSON: raw},
		Tasks: map[string]workflows.TaskStatus{"train": {Usage: workflows.Usage{WallSeconds: 2}}}})
	if err != nil || st.Paid != 100 || q.consumed["job-2"] != 100 {
		t.Fatalf("settle: %+v %v consumed %v", st, err, q.consumed)
	}
}

type recTracker struct{ started, finished []string }

func (r *recTracker) TaskStarted(_ context.Context, kind, run string) error {
	r.started = append(r.started, kind+"/"+run)
	return nil
}

func (r *recTracker) TaskFinished(_ context.Context, kind, run string) error {
	r.finished = append(r.finished, kind+"/"+run)
	return nil
}

// A pool's runtime is opened on first use; the award's devices reach the
// task; the tracker sees the run start and finish; the placement record
// names the devices.
func TestPoolRuntimeDevicesTracker(t *testing.T) {
	_, raw := quickstartPlan(t)
	rt := newFake()
	tr := &recTracker{}
	opened := 0
	a := &Activities{JobsDir: t.TempDir(), Tracker: tr, Ledger: &fakeLedger{},
		OpenRuntime: func(_ context.Context, kind string) (runtimes.Runtime, error) {
			if kind != "pool:lab" {
				return nil, runtimes.ErrNotFound
			}
			opened++
			return rt, nil
		}}
	ctx := context.Background()
	award := workflows.NegotiateOutput{Provider: "lab", Pool: "lab", Runtime: "pool:lab", Price: 10, Currency: "USD",
		Devices: []workflows.TaskDevices{{Task: "train", Node: "node-1", GPUDevices: []string{"GPU-1"}}}}
	pl, err := a.Place(ctx, workflows.PlaceInput{JobID: "job-1", Tenant: "t", PlanInput: workflows.PlanInput{PlanJSON: raw}, Award: award})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(pl.Record), `"GPU-1"`) || !strings.Contains(string(pl.Record), `"node-1"`) {
		t.Errorf("placement record %s", pl.Record)
	}
	run := workflows.RunID("job-1", "train", 1)
	if _, err := a.StartTask(ctx, workflows.StartTaskInput{JobID: "job-1", Task: "train", Attempt: 1, RunID: run, PlanInput: workflows.PlanInput{PlanJSON: raw}, Award: award}); err != nil {
		t.Fatal(err)
	}
	if got := rt.tasks[run].spec.Resources.GPUDevices; len(got) != 1 || got[0] != "GPU-1" {
		t.Errorf("GPU devices %v", got)
	}
	rt.finish(run, 0, map[string]string{"metrics.json": `{"accuracy": 0.93}`})
	if _, err := a.WaitTask(ctx, workflows.WaitTaskInput{JobID: "job-1", Task: "train", RunID: run, Runtime: "pool:lab"}); err != nil {
		t.Fatal(err)
	}
	if opened != 1 || len(tr.started) != 1 || tr.started[0] != "pool:lab/"+run || len(tr.finished) != 1 {
		t.Errorf("opened %d, started %v, finished %v", opened, tr.started, tr.finished)
	}
	// An unknown kind is a permanent execution error.
	if _, err := a.StopTask(ctx, workflows.StopTaskInput{RunID: run, Runtime: "pool:gone"}); appErrType(err) != workflows.ErrTypeExecution {
		t.Errorf("unknown runtime: %v", err)
	}
}
