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
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/accordmesh/accord/internal/atomicfile"
	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/specs"
	"github.com/accordmesh/accord/workflows"
)

// heartbeatEvery is how often long activities heartbeat; well inside the
// workflow's heartbeat timeouts.
const heartbeatEvery = 2 * time.Second

// stopGrace is how long a stopped task gets before it is killed.
const stopGrace = 5 * time.Second

// OutputsDir is where a task's collected outputs live on the worker's host.
func (a *Activities) OutputsDir(jobID, task string) string {
	return filepath.Join(a.jobDir(jobID), "outputs", task)
}

// LogPath is where a finished run's log is kept once its container is gone.
func (a *Activities) LogPath(jobID, runID string) string {
	return filepath.Join(a.jobDir(jobID), "logs", runID+".log")
}

func (a *Activities) resultPath(jobID, runID string) string {
	return filepath.Join(a.jobDir(jobID), "results", runID+".json")
}

// StartTask prepares the image and starts one attempt of a task. Idempotent:
// the runtime re-attaches to an existing container with the same run ID
// instead of starting a second one.
func (a *Activities) StartTask(ctx context.Context, in workflows.StartTaskInput) (workflows.StartTaskOutput, error) {
	digest, _, err := a.start(ctx, in)
	if err != nil {
		return workflows.StartTaskOutput{}, err
	}
	return workflows.StartTaskOutput{RunID: in.RunID, ImageDigest: digest}, nil
}

// RunTask starts one attempt (or re-attaches to it) and waits for it:
// StartTask and WaitTask in one activity. Idempotent by run ID: a recorded
// result is returned as is, and a run that exists is re-attached, never
// started twice.
func (a *Activities) RunTask(ctx context.Context, in workflows.RunTaskInput) (workflows.RunTaskOutput, error) {
	if out, ok := a.readResult(in.JobID, in.RunID); ok {
		return out, nil
	}
	// A split job's upstream outputs that another provider collected
	// come from the artifact store, digest-verified.
	for _, up := range sortedNames(in.Upstream) {
		if err := a.localOutputs(ctx, in.JobID, up, in.Upstream[up]); err != nil {
			return workflows.RunTaskOutput{}, err
		}
	}
	digest, task, err := a.start(ctx, workflows.StartTaskInput{
		JobID: in.JobID, Task: in.Task, Attempt: in.Attempt, RunID: in.RunID, PlanInput: in.PlanInput, Award: in.Award,
	})
	if err != nil {
		return workflows.RunTaskOutput{}, err
	}
	return a.wait(ctx, workflows.WaitTaskInput{
		JobID: in.JobID, Task: in.Task, RunID: in.RunID, Runtime: in.Award.Runtime, Window: in.Window,
	}, digest, task.Outputs)
}

// start prepares the image and starts (or re-attaches to) one attempt,
// returning the image digest and the plan's task.
func (a *Activities) start(ctx context.Context, in workflows.StartTaskInput) (string, specs.PlanTask, error) {
	plan, err := a.plan(ctx, in.PlanInput)
	if err != nil {
		return "", specs.PlanTask{}, err
	}
	task, ok := findTask(plan, in.Task)
	if !ok {
		return "", task, permanent(workflows.ErrTypeInvalidSpec, fmt.Errorf("no task %q in plan", in.Task))
	}
	digest, err := a.startTask(ctx, in, plan.Tenant, task)
	return digest, task, err
}

// startTask resolves the task's image and inputs and starts the attempt.
func (a *Activities) startTask(ctx context.Context, in workflows.StartTaskInput, tenant string, task specs.PlanTask) (string, error) {
	rt, err := a.runtime(ctx, in.Award.Runtime)
	if err != nil {
		return "", err
	}
	spec, err := a.taskSpec(ctx, tenant, in.JobID, in.RunID, task.Task)
	if err != nil {
		return "", err
	}
	for _, d := range in.Award.Devices {
		if d.Task == task.Name {
			spec.Resources.GPUDevices = append([]string(nil), d.GPUDevices...)
		}
	}
	digest, cached, err := a.prepare(ctx, rt, spec.Image)
	if err != nil {
		return "", runtimeErr(ctx, "prepare "+task.Image, err)
	}
	if a.Tracker != nil {
		if err := a.Tracker.TaskStarted(ctx, in.Award.Runtime, in.RunID); err != nil {
			return "", permanent(workflows.ErrTypeExecution, fmt.Errorf("start %s: %w", in.RunID, err))
		}
	}
	st, err := rt.Start(ctx, spec)
	if err != nil && cached && errors.Is(err, runtimes.ErrImage) {
		// The image went away behind the cache's back: prepare it again.
		a.forget(spec.Image)
		if digest, _, err = a.prepare(ctx, rt, spec.Image); err == nil {
			st, err = rt.Start(ctx, spec)
		}
	}
	if err != nil {
		return "", runtimeErr(ctx, "start "+in.RunID, err)
	}
	a.logger(ctx, in.JobID).Info("task started", "run_id", in.RunID, "image", digest, "state", st.State)
	return digest, nil
}

// prepareKey identifies an image version: for an OCI archive, its path,
// size and modification time, so a rebuilt archive is imported again.
func prepareKey(rt runtimes.Runtime, image string) string {
	key := rt.Name() + "|" + image
	if p, ok := strings.CutPrefix(image, "oci-archive:"); ok {
		fi, err := os.Stat(p)
		if err != nil {
			return ""
		}
		key += fmt.Sprintf("|%d|%d", fi.Size(), fi.ModTime().UnixNano())
	}
	return key
}

// prepare makes the image available once per image version per process:
// importing an archive for every task would dominate short jobs.
func (a *Activities) prepare(ctx context.Context, rt runtimes.Runtime, image string) (digest string, cached bool, err error) {
	key := prepareKey(rt, image)
	// One preparation per image at a time: the many tasks of a large job
	// start together and would otherwise all import the same archive.
	unlock := a.lockImage(key)
	defer unlock()
	a.mu.Lock()
	d, ok := a.prepared[key]
	a.mu.Unlock()
	if ok && key != "" {
		return d, true, nil
	}
	stop := heartbeat(ctx, "preparing")
	d, err = rt.Prepare(ctx, image)
	stop()
	if err != nil {
		return "", false, err
	}
	if key != "" {
		a.mu.Lock()
		if a.prepared == nil {
			a.prepared = map[string]string{}
		}
		a.prepared[key] = d
		a.mu.Unlock()
	}
	return d, false, nil
}

// lockImage serialises preparations of one image version.
func (a *Activities) lockImage(key string) (unlock func()) { return a.preparing.Lock(key) }

func (a *Activities) forget(image string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range a.prepared {
		if strings.Contains(k, "|"+image) {
			delete(a.prepared, k)
		}
	}
}

// taskSpec builds the runtime's description of one attempt: the image and
// every input resolved (inputSource, resolveImage), so nothing the tenant
// names is mounted or imported unchecked.
func (a *Activities) taskSpec(ctx context.Context, tenant, jobID, runID string, t specs.Task) (runtimes.TaskSpec, error) {
	image, err := a.resolveImage(ctx, tenant, t.Image)
	if err != nil {
		return runtimes.TaskSpec{}, err
	}
	spec := runtimes.TaskSpec{
		ID:         runID,
		Image:      image,
		Command:    append(append([]string(nil), t.Command...), t.Args...),
		Env:        t.Env,
		WorkingDir: t.WorkingDir,
		OutputDir:  "/out",
		Resources: runtimes.Resources{
			MilliCPU: t.Resources.MilliCPU, MemoryBytes: t.Resources.MemoryBytes, DiskBytes: t.Resources.DiskBytes,
			GPUs: t.Resources.GPU.Count, GPUModel: t.Resources.GPU.Model, GPUMemBytes: t.Resources.GPU.MinMemoryBytes,
			MaxDuration: t.Resources.MaxDuration,
		},
		Labels: map[string]string{"accord.job": jobID, "accord.task": t.Name},
	}
	for _, o := range t.Outputs {
		spec.Outputs = append(spec.Outputs, o.Path)
	}
	for _, in := range t.Inputs {
		target := in.Target
		if target == "" {
			target = "/in/" + in.Name
		}
		src, err := a.inputSource(ctx, tenant, jobID, in)
		if err != nil {
			return spec, err
		}
		spec.Inputs = append(spec.Inputs, runtimes.Mount{Source: src, Target: target})
	}
	mounts, err := a.modelMounts(ctx, t)
	if err != nil {
		return spec, err
	}
	for _, m := range mounts {
		spec.Inputs = append(spec.Inputs, runtimes.Mount{Source: m.src, Target: m.target})
	}
	return spec, nil
}

// WaitTask waits for a run to end, heartbeating while it runs. After
// in.Window it gives its worker slot back with a retryable
// ErrTypeStillRunning error; the workflow's retry policy schedules the next
// wait, so a long task never pins a slot and a lost worker is noticed by the
// heartbeat timeout. Once the run is terminal it collects outputs and the
// log, records the result, and cleans the container up. Idempotent: a wait
// retried after cleanup returns the recorded result.
func (a *Activities) WaitTask(ctx context.Context, in workflows.WaitTaskInput) (workflows.WaitTaskOutput, error) {
	if out, ok := a.readResult(in.JobID, in.RunID); ok {
		return out, nil
	}
	return a.wait(ctx, in, "", nil)
}

// wait waits for a run, collects and records its result, and cleans it up.
// An output the spec pins (declared, with sha256) that was collected with
// another digest fails the run.
func (a *Activities) wait(ctx context.Context, in workflows.WaitTaskInput, imageDigest string, declared []specs.Output) (workflows.WaitTaskOutput, error) {
	rt, err := a.runtime(ctx, in.Runtime)
	if err != nil {
		return workflows.WaitTaskOutput{}, err
	}
	window := in.Window
	if window <= 0 {
		window = workflows.DefaultWaitWindow
	}
	// Heartbeat through the wait, the output collection and the log copy:
	// a slow collection must not look like a lost worker.
	stop := heartbeat(ctx, "running "+in.RunID)
	defer stop()
	wctx, cancel := context.WithTimeout(ctx, window)
	st, err := rt.Wait(wctx, in.RunID)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return workflows.WaitTaskOutput{}, ctx.Err()
		}
		if wctx.Err() != nil {
			return workflows.WaitTaskOutput{}, temporal.NewApplicationError("still running: "+in.RunID, workflows.ErrTypeStillRunning)
		}
		if errors.Is(err, runtimes.ErrNotFound) {
			return workflows.WaitTaskOutput{}, permanent(workflows.ErrTypeExecution, fmt.Errorf("run %s vanished: %w", in.RunID, err))
		}
		return workflows.WaitTaskOutput{}, runtimeErr(ctx, "wait "+in.RunID, err)
	}
	out := workflows.WaitTaskOutput{
		State: string(st.State), ExitCode: st.ExitCode, Reason: st.Reason,
		StartedAt: st.StartedAt, FinishedAt: st.FinishedAt, Usage: st.Usage, ImageDigest: imageDigest,
	}
	if st.State == runtimes.StateExited && st.ExitCode == 0 {
		outs, err := rt.Collect(ctx, in.RunID, a.OutputsDir(in.JobID, in.Task))
		if err != nil && ctx.Err() != nil {
			// Cut short (a worker shutting down, a lost heartbeat): nothing
			// is recorded, and the retry collects from the exited container.
			return workflows.WaitTaskOutput{}, fmt.Errorf("collect %s: %w", in.RunID, err)
		}
		if err != nil {
			// A successful run that did not produce its declared outputs failed.
			out.State, out.ExitCode, out.Reason = string(runtimes.StateFailed), -1, "collect outputs: "+err.Error()
		}
		for _, o := range outs {
			out.Outputs = append(out.Outputs, workflows.OutputArtifact{Path: o.Path, SHA256: o.SHA256, Size: o.Size})
		}
		if err == nil {
			if bad := pinMismatch(declared, out.Outputs); bad != "" {
				out.State, out.ExitCode, out.Reason = string(runtimes.StateFailed), -1, bad
			} else if err := a.pushOutputs(ctx, in.JobID, in.Task, out.Outputs); err != nil {
				// Nothing is recorded: the retry collects and pushes again.
				return workflows.WaitTaskOutput{}, err
			}
		}
	}
	a.saveLog(ctx, rt, in.JobID, in.RunID)
	if err := a.writeResult(in.JobID, in.RunID, out); err != nil {
		return workflows.WaitTaskOutput{}, err
	}
	if err := rt.Cleanup(ctx, in.RunID); err != nil {
		a.logger(ctx, in.JobID).Warn("cleanup failed", "run_id", in.RunID, "error", err)
	}
	a.finished(ctx, in.Runtime, in.RunID)
	a.logger(ctx, in.JobID).Info("task finished", "run_id", in.RunID, "state", out.State, "exit", out.ExitCode)
	return out, nil
}

// finished tells the tracker a run ended; a failure is logged, since the
// run is over either way and a pool's detach reconciles with Nomad.
func (a *Activities) finished(ctx context.Context, kind, runID string) {
	if a.Tracker == nil {
		return
	}
	if err := a.Tracker.TaskFinished(ctx, kind, runID); err != nil {
		a.logger(ctx, jobOf(runID)).Warn("task tracker", "run_id", runID, "error", err)
	}
}

// StopTask stops and cleans up a run: the compensation for StartTask.
// Idempotent: an unknown or already removed run is not an error.
func (a *Activities) StopTask(ctx context.Context, in workflows.StopTaskInput) (workflows.StopTaskOutput, error) {
	rt, err := a.runtime(ctx, in.Runtime)
	if err != nil {
		return workflows.StopTaskOutput{}, err
	}
	jobID := jobOf(in.RunID)
	err = rt.Stop(ctx, in.RunID, stopGrace)
	if errors.Is(err, runtimes.ErrNotFound) {
		a.finished(ctx, in.Runtime, in.RunID)
		return workflows.StopTaskOutput{}, nil
	}
	if err != nil {
		return workflows.StopTaskOutput{}, runtimeErr(ctx, "stop "+in.RunID, err)
	}
	a.saveLog(ctx, rt, jobID, in.RunID)
	if err := rt.Cleanup(ctx, in.RunID); err != nil {
		return workflows.StopTaskOutput{}, runtimeErr(ctx, "cleanup "+in.RunID, err)
	}
	a.finished(ctx, in.Runtime, in.RunID)
	a.logger(ctx, jobID).Info("task stopped", "run_id", in.RunID)
	return workflows.StopTaskOutput{}, nil
}

// jobOf recovers the job ID from a run ID <job>.<task>.<attempt>; job IDs
// contain no dots.
func jobOf(runID string) string {
	j, _, _ := strings.Cut(runID, ".")
	return j
}

func (a *Activities) saveLog(ctx context.Context, rt runtimes.Runtime, jobID, runID string) {
	rc, err := rt.Logs(ctx, runID, false)
	if err != nil {
		return
	}
	defer rc.Close()
	p := a.LogPath(jobID, runID)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return
	}
	f, err := os.Create(p)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, rc)
}

func (a *Activities) readResult(jobID, runID string) (workflows.WaitTaskOutput, bool) {
	var out workflows.WaitTaskOutput
	b, err := os.ReadFile(a.resultPath(jobID, runID))
	if err != nil || json.Unmarshal(b, &out) != nil {
		return out, false
	}
	return out, true
}

// writeResult records a run's result atomically before its container is
// removed, so a retried wait can still answer.
func (a *Activities) writeResult(jobID, runID string, out workflows.WaitTaskOutput) error {
	p := a.resultPath(jobID, runID)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("record result: %w", err)
	}
	b, _ := json.Marshal(out)
	if err := atomicfile.WriteFile(p, b, 0o644); err != nil {
		return fmt.Errorf("record result: %w", err)
	}
	return nil
}

// pinMismatch describes the first collected output whose digest differs
// from the sha256 the spec pins for it, or "" when all pins hold.
func pinMismatch(declared []specs.Output, got []workflows.OutputArtifact) string {
	digests := make(map[string]string, len(got))
	for _, o := range got {
		digests[o.Path] = o.SHA256
	}
	for _, o := range declared {
		if o.SHA256 == "" {
			continue
		}
		if d, ok := digests[o.Path]; ok && d != strings.TrimPrefix(o.SHA256, "sha256:") {
			return fmt.Sprintf("output %s: content is sha256:%s, but the spec pins %s", o.Path, d, o.SHA256)
		}
	}
	return ""
}

func findTask(p *specs.Plan, name string) (specs.PlanTask, bool) {
	for _, t := range p.Tasks {
		if t.Name == name {
			return t, true
		}
	}
	return specs.PlanTask{}, false
}

// runtimeErr classifies a runtime error: an invalid task or missing image
// is permanent, everything else is retried — including any error caused by
// the activity's context ending (a worker shutting down mid-import), which
// says nothing about the task.
func runtimeErr(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	if errors.Is(err, runtimes.ErrInvalid) || errors.Is(err, runtimes.ErrImage) {
		return permanent(workflows.ErrTypeExecution, fmt.Errorf("%s: %w", what, err))
	}
	return fmt.Errorf("%s: %w", what, err)
}

// heartbeat records progress every heartbeatEvery until stop is called, so
// that Temporal notices a dead worker and can deliver cancellation.
func heartbeat(ctx context.Context, detail string) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(heartbeatEvery)
		defer t.Stop()
		activity.RecordHeartbeat(ctx, detail)
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx, detail)
			}
		}
	}()
	return func() { close(done); <-finished }
}
