package nomad

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/accordmesh/accord/runtimes"
)

func init() {
	runtimes.Register("nomad", func(ctx context.Context, opts map[string]string) (runtimes.Runtime, error) {
		cfg, err := ConfigFromOptions(opts)
		if err != nil {
			return nil, err
		}
		return New(ctx, cfg)
	})
}

// Runtime runs tasks as Nomad batch jobs. It keeps no state of its own: every
// answer is read back from the cluster, so any worker can pick up a task
// another worker started.
type Runtime struct {
	cfg    Config
	client *api.Client
	// overstay is how long past MaxDuration Wait lets a task run before it
	// stops the job itself (for agents that ignore max_run_duration).
	overstay time.Duration
	// poll bounds each blocking query, so ctx and overstay are honoured.
	poll time.Duration
}

var _ runtimes.Runtime = (*Runtime)(nil)

// New opens a runtime on a cluster. It does not contact the cluster; use
// Ping to check reachability.
func New(_ context.Context, cfg Config) (*Runtime, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	cl, err := NewClient(cfg)
	if err != nil {
		return nil, err
	}
	return &Runtime{cfg: cfg, client: cl, overstay: 30 * time.Second, poll: 30 * time.Second}, nil
}

// Client returns the api client (for inventory calls on the same cluster).
func (r *Runtime) Client() *api.Client { return r.client }

// Config returns the effective configuration.
func (r *Runtime) Config() Config { return r.cfg }

// Name implements runtimes.Runtime.
func (r *Runtime) Name() string { return "nomad" }

// Prepare checks the image reference. Nomad clients pull images
// themselves, so there is nothing to fetch here: a reference pinned by
// digest ("name@sha256:…") returns that digest; a tag returns "" (it is
// resolved on the node at start); an "oci-archive:PATH" returns the
// archive's manifest digest when the pool has an artifact_base to serve it
// from, else ErrImage because nodes cannot read the worker's files.
func (r *Runtime) Prepare(_ context.Context, image string) (string, error) {
	switch {
	case image == "":
		return "", fmt.Errorf("%w: empty image reference", runtimes.ErrImage)
	case strings.HasPrefix(image, ArchivePrefix):
		if r.cfg.ArtifactBase == "" {
			return "", fmt.Errorf("%w: %s: Nomad nodes cannot read the worker's files; set the pool's artifact_base or push the image to a registry", runtimes.ErrImage, image)
		}
		a, err := readArchive(strings.TrimPrefix(image, ArchivePrefix))
		if err != nil {
			return "", err
		}
		return a.Digest, nil
	case strings.ContainsAny(image, " \t\n"):
		return "", fmt.Errorf("%w: %q is not an image reference", runtimes.ErrImage, image)
	}
	if _, d, ok := strings.Cut(image, "@"); ok {
		if !strings.HasPrefix(d, "sha256:") || len(d) != len("sha256:")+64 {
			return "", fmt.Errorf("%w: %s: malformed digest", runtimes.ErrImage, image)
		}
		return d, nil
	}
	return "", nil
}

// Start submits the task as a batch job, or re-attaches to the job already
// submitted for spec.ID. Idempotency: the job ID is a function of the task
// ID; an existing job whose meta names the same task and spec digest is
// adopted; a job that names another task or spec is refused (ErrInvalid).
// A fresh job is planned first — a plan that cannot place it fails with
// ErrPlacement naming the constraint or exhausted resource — then registered
// with EnforceIndex at the plan's JobModifyIndex, so of two racing workers
// one registers and the other re-attaches. Start returns once the task is
// running or terminal.
func (r *Runtime) Start(ctx context.Context, spec runtimes.TaskSpec) (runtimes.Status, error) {
	pin, err := r.pinNode(ctx, spec.Resources.GPUDevices)
	if err != nil {
		return runtimes.Status{ID: spec.ID}, err
	}
	job, err := BuildJob(r.cfg, spec, pin)
	if err != nil {
		return runtimes.Status{ID: spec.ID}, err
	}
	id := *job.ID
	for attempt := 0; ; attempt++ {
		existing, err := r.job(ctx, id)
		switch {
		case errors.Is(err, runtimes.ErrNotFound):
		case err != nil:
			return runtimes.Status{ID: spec.ID}, err
		default:
			if existing.Meta[MetaTaskID] != spec.ID || existing.Meta[MetaSpecDigest] != job.Meta[MetaSpecDigest] {
				return runtimes.Status{ID: spec.ID}, fmt.Errorf("%w: Nomad job %s already runs a different task (%s)", runtimes.ErrInvalid, id, existing.Meta[MetaTaskID])
			}
			slog.Debug("nomad: re-attaching", "task", spec.ID, "job", id)
			return r.waitStarted(ctx, spec.ID)
		}
		if attempt > 0 {
			return runtimes.Status{ID: spec.ID}, fmt.Errorf("%w: job %s vanished while registering", runtimes.ErrUnavailable, id)
		}
		wo := (&api.WriteOptions{}).WithContext(ctx)
		plan, _, err := r.client.Jobs().PlanOpts(job, &api.PlanOptions{}, wo)
		if err != nil {
			return runtimes.Status{ID: spec.ID}, classify("plan job "+id, err)
		}
		if len(plan.FailedTGAllocs) > 0 {
			return runtimes.Status{ID: spec.ID, State: runtimes.StateFailed, Reason: explain(job, plan.FailedTGAllocs)}, placementError(job, plan.FailedTGAllocs)
		}
		_, _, err = r.client.Jobs().RegisterOpts(job, &api.RegisterOptions{EnforceIndex: true, ModifyIndex: plan.JobModifyIndex}, wo)
		if err != nil {
			if strings.Contains(err.Error(), api.RegisterEnforceIndexErrPrefix) {
				slog.Debug("nomad: lost registration race, re-attaching", "job", id)
				continue
			}
			return runtimes.Status{ID: spec.ID}, classify("register job "+id, err)
		}
		return r.waitStarted(ctx, spec.ID)
	}
}

// pinNode finds the node that holds the granted device instances, so that the
// job lands where the market sold GPUs. No devices: no pin.
func (r *Runtime) pinNode(ctx context.Context, devices []string) (string, error) {
	if len(devices) == 0 {
		return "", nil
	}
	q := (&api.QueryOptions{Params: map[string]string{"resources": "true"}}).WithContext(ctx)
	nodes, _, err := r.client.Nodes().List(q)
	if err != nil {
		return "", classify("list nodes", err)
	}
	found := ""
	for _, n := range nodes {
		if n.NodeResources == nil {
			continue
		}
		for _, d := range n.NodeResources.Devices {
			for _, inst := range d.Instances {
				if containsString(devices, inst.ID) {
					if found != "" && found != n.ID {
						return "", fmt.Errorf("%w: granted GPUs %v span nodes %s and %s", runtimes.ErrInvalid, devices, found, n.ID)
					}
					found = n.ID
				}
			}
		}
	}
	if found == "" {
		return "", fmt.Errorf("%w: no node has the granted GPUs %v", runtimes.ErrInvalid, devices)
	}
	return found, nil
}

func (r *Runtime) waitStarted(ctx context.Context, taskID string) (runtimes.Status, error) {
	return r.watch(ctx, taskID, func(s runtimes.Status) bool { return s.State != runtimes.StatePending })
}

// Status implements runtimes.Runtime.
func (r *Runtime) Status(ctx context.Context, id string) (runtimes.Status, error) {
	st, _, err := r.status(ctx, id, 0)
	return st, err
}

// Wait blocks until the task is terminal, following rescheduled and replaced
// allocations. It stops a task that outlives MaxDuration by more than a
// grace period (Nomad's max_run_duration normally does that first) and then
// reports it as timed out.
func (r *Runtime) Wait(ctx context.Context, id string) (runtimes.Status, error) {
	return r.watch(ctx, id, func(s runtimes.Status) bool { return s.State.Terminal() })
}

func (r *Runtime) watch(ctx context.Context, id string, done func(runtimes.Status) bool) (runtimes.Status, error) {
	var index uint64
	for {
		st, idx, err := r.status(ctx, id, index)
		if err != nil {
			if ctx.Err() != nil {
				return st, fmt.Errorf("nomad: waiting for %s: %w", id, ctx.Err())
			}
			if errors.Is(err, runtimes.ErrUnavailable) {
				slog.Warn("nomad: status query failed, retrying", "task", id, "err", err)
				select {
				case <-ctx.Done():
					return st, fmt.Errorf("nomad: waiting for %s: %w", id, ctx.Err())
				case <-time.After(time.Second):
				}
				continue
			}
			return st, err
		}
		if done(st) {
			return st, nil
		}
		if st.State == runtimes.StateRunning {
			if limit := r.maxDuration(ctx, id); limit > 0 && !st.StartedAt.IsZero() && time.Since(st.StartedAt) > limit+r.overstay {
				slog.Warn("nomad: task outlived its max duration, stopping", "task", id, "limit", limit)
				if err := r.Stop(ctx, id, 0); err != nil {
					return st, err
				}
			}
		}
		index = idx
	}
}

func (r *Runtime) maxDuration(ctx context.Context, id string) time.Duration {
	job, err := r.job(ctx, JobID(id))
	if err != nil {
		return 0
	}
	d, _ := time.ParseDuration(job.Meta[MetaMaxDuration])
	return d
}

func (r *Runtime) job(ctx context.Context, jobID string) (*api.Job, error) {
	job, _, err := r.client.Jobs().Info(jobID, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, classify("job "+jobID, err)
	}
	return job, nil
}

// status reads the job and its allocations; with index > 0 it first blocks
// until the allocations change past index (or the poll period ends).
func (r *Runtime) status(ctx context.Context, id string, index uint64) (runtimes.Status, uint64, error) {
	jobID := JobID(id)
	q := (&api.QueryOptions{WaitIndex: index, WaitTime: r.poll}).WithContext(ctx)
	allocs, meta, err := r.client.Jobs().Allocations(jobID, true, q)
	if err != nil {
		return runtimes.Status{ID: id, State: runtimes.StateUnknown}, index, classify("allocations of "+jobID, err)
	}
	job, err := r.job(ctx, jobID)
	if err != nil {
		return runtimes.Status{ID: id, State: runtimes.StateUnknown}, meta.LastIndex, err
	}
	if job.Meta[MetaTaskID] != id {
		return runtimes.Status{ID: id}, meta.LastIndex, fmt.Errorf("%w: Nomad job %s runs task %q", runtimes.ErrNotFound, jobID, job.Meta[MetaTaskID])
	}
	st := r.derive(ctx, id, job, allocs)
	return st, meta.LastIndex, nil
}

// latest is the newest allocation in the replacement chain.
func latest(allocs []*api.AllocationListStub) *api.AllocationListStub {
	var best *api.AllocationListStub
	for _, a := range allocs {
		if best == nil || a.CreateIndex > best.CreateIndex {
			best = a
		}
	}
	return best
}

// derive maps Nomad's job and allocation states onto Accord's.
func (r *Runtime) derive(ctx context.Context, id string, job *api.Job, allocs []*api.AllocationListStub) runtimes.Status {
	st := runtimes.Status{ID: id, State: runtimes.StatePending}
	stopped := job.Stop != nil && *job.Stop
	jobStatus := ""
	if job.Status != nil {
		jobStatus = *job.Status
	}
	a := latest(allocs)
	if a == nil {
		if stopped {
			st.State, st.Reason = runtimes.StateKilled, "stopped before placement"
			return st
		}
		st.Reason = r.blockedReason(ctx, job)
		if jobStatus == "dead" {
			st.State = runtimes.StateFailed
		}
		return st
	}
	st.Node = a.NodeID
	ts := a.TaskStates[DefaultTaskName]
	if ts != nil {
		st.StartedAt, st.FinishedAt = ts.StartedAt, ts.FinishedAt
	}
	maxDur, _ := time.ParseDuration(job.Meta[MetaMaxDuration])
	ran := func() time.Duration {
		if st.StartedAt.IsZero() || st.FinishedAt.IsZero() {
			return 0
		}
		return st.FinishedAt.Sub(st.StartedAt)
	}
	switch a.ClientStatus {
	case api.AllocClientStatusPending:
		st.State = runtimes.StatePending
		if len(allocs) > 1 {
			st.Reason = fmt.Sprintf("replacement allocation %s pending", short(a.ID))
		}
	case api.AllocClientStatusRunning:
		st.State = runtimes.StateRunning
		if a.DesiredStatus != api.AllocDesiredStatusRun && stopped {
			st.Reason = "stopping"
		}
	case api.AllocClientStatusComplete:
		code, _, _ := exitOf(ts)
		st.State, st.ExitCode = runtimes.StateExited, code
		if stopped || a.DesiredStatus != api.AllocDesiredStatusRun {
			if killedEarly(ts) {
				st.State, st.Reason = runtimes.StateKilled, "stopped by request"
				if maxDur > 0 && ran() >= maxDur {
					st.State, st.Reason = runtimes.StateTimedOut, fmt.Sprintf("exceeded max duration %v", maxDur)
				}
			}
		}
	case api.AllocClientStatusFailed, api.AllocClientStatusLost:
		if !stopped && jobStatus != "dead" {
			// Nomad will replace it (reschedule or lost-node replacement).
			st.State = runtimes.StatePending
			st.Reason = fmt.Sprintf("allocation %s %s on node %s; awaiting replacement", short(a.ID), a.ClientStatus, short(a.NodeID))
			break
		}
		code, oom, terminated := exitOf(ts)
		switch {
		case a.ClientStatus == api.AllocClientStatusLost && stopped:
			// Lost allocations are always replaced unless the job is stopped.
			st.State, st.Reason = runtimes.StateKilled, "stopped while awaiting replacement of a lost allocation"
		case a.ClientStatus == api.AllocClientStatusLost:
			st.State, st.Reason = runtimes.StateFailed, fmt.Sprintf("node %s lost", short(a.NodeID))
		case oom:
			st.State, st.ExitCode, st.Reason = runtimes.StateOOM, code, "killed for exceeding its memory limit"
		case terminated:
			st.State, st.ExitCode = runtimes.StateExited, code
			if code != 0 {
				st.Reason = fmt.Sprintf("exit code %d", code)
			}
		case maxDur > 0 && ran() >= maxDur:
			st.State, st.Reason = runtimes.StateTimedOut, fmt.Sprintf("exceeded max duration %v", maxDur)
		case stopped && killedEarly(ts):
			st.State, st.Reason = runtimes.StateKilled, "stopped by request"
		default:
			st.State, st.Reason = runtimes.StateFailed, failureReason(ts, a)
		}
	default:
		st.State = runtimes.StateUnknown
	}
	if len(allocs) > 1 && st.State.Terminal() && st.Reason != "" {
		st.Reason += fmt.Sprintf(" (after %d allocations)", len(allocs))
	}
	st.Usage = r.usage(ctx, job, a, st)
	return st
}

// exitOf reads the exit code from the task's Terminated event.
func exitOf(ts *api.TaskState) (code int, oom, terminated bool) {
	if ts == nil {
		return 0, false, false
	}
	for _, e := range ts.Events {
		if e.Type != "Terminated" {
			continue
		}
		terminated = true
		code = e.ExitCode
		if v, ok := e.Details["exit_code"]; ok {
			if n, err := strconv.Atoi(v); err == nil {
				code = n
			}
		}
		oom = e.Details["oom_killed"] == "true"
	}
	return code, oom, terminated
}

// killedEarly reports a task ended by a kill rather than by exiting.
func killedEarly(ts *api.TaskState) bool {
	if ts == nil {
		return true
	}
	for _, e := range ts.Events {
		if e.Type == "Killed" || e.Type == "Killing" {
			return true
		}
	}
	_, _, terminated := exitOf(ts)
	return !terminated
}

func failureReason(ts *api.TaskState, a *api.AllocationListStub) string {
	if ts != nil {
		for i := len(ts.Events) - 1; i >= 0; i-- {
			e := ts.Events[i]
			if e.DriverError != "" {
				return e.Type + ": " + e.DriverError
			}
			if e.FailsTask && e.DisplayMessage != "" {
				return e.Type + ": " + e.DisplayMessage
			}
		}
	}
	if a.ClientDescription != "" {
		return a.ClientDescription
	}
	return "allocation " + a.ClientStatus
}

// blockedReason explains a job with no allocation from its blocked evaluation.
func (r *Runtime) blockedReason(ctx context.Context, job *api.Job) string {
	evals, _, err := r.client.Jobs().Evaluations(*job.ID, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return "waiting for placement"
	}
	for i := len(evals) - 1; i >= 0; i-- {
		if evals[i].Status == "blocked" && len(evals[i].FailedTGAllocs) > 0 {
			return "waiting for capacity: " + explain(job, evals[i].FailedTGAllocs)
		}
	}
	return "waiting for placement"
}

// usage reports metering: wall time from the task state, the granted
// envelope (cores, memory, GPUs) times wall time, and peak memory from the
// allocation's live stats when the task is still running.
func (r *Runtime) usage(ctx context.Context, job *api.Job, a *api.AllocationListStub, st runtimes.Status) runtimes.Usage {
	var u runtimes.Usage
	if st.StartedAt.IsZero() {
		return u
	}
	end := st.FinishedAt
	if end.IsZero() || end.Before(st.StartedAt) {
		end = time.Now()
	}
	u.WallSeconds = end.Sub(st.StartedAt).Seconds()
	milli, _ := strconv.ParseInt(job.Meta[MetaMilliCPU], 10, 64)
	memB, _ := strconv.ParseInt(job.Meta[MetaMemoryBytes], 10, 64)
	gpus, _ := strconv.Atoi(job.Meta[MetaGPUs])
	if milli == 0 {
		milli = 1000 * cpuMHz(0, r.cfg.CPUMHzPerCore) / r.cfg.CPUMHzPerCore
	}
	if memB == 0 {
		memB = taskMemoryMB(0) << 20
	}
	u.CPUSeconds = u.WallSeconds * float64(milli) / 1000
	u.MemGBSeconds = u.WallSeconds * float64(memB) / (1 << 30)
	u.GPUSeconds = u.WallSeconds * float64(gpus)
	u.PeakMemBytes = memB
	if a.ClientStatus == api.AllocClientStatusRunning {
		stats, err := r.client.Allocations().Stats(&api.Allocation{ID: a.ID, NodeID: a.NodeID}, (&api.QueryOptions{}).WithContext(ctx))
		if err == nil && stats.ResourceUsage != nil && stats.ResourceUsage.MemoryStats != nil {
			if m := stats.ResourceUsage.MemoryStats; m.MaxUsage > 0 {
				u.PeakMemBytes = int64(m.MaxUsage)
			} else if m.RSS > 0 {
				u.PeakMemBytes = int64(m.RSS)
			}
		}
	}
	return u
}

// Logs streams the task's stdout and stderr, interleaved as frames arrive.
// Without follow it returns what the newest allocation has logged; with
// follow it streams until the task is terminal, moving on to replacement
// allocations.
func (r *Runtime) Logs(ctx context.Context, id string, follow bool) (io.ReadCloser, error) {
	jobID := JobID(id)
	if _, err := r.job(ctx, jobID); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	go func() {
		defer cancel()
		seen := map[string]bool{}
		var index uint64
		for ctx.Err() == nil {
			allocs, meta, err := r.client.Jobs().Allocations(jobID, true, (&api.QueryOptions{WaitIndex: index, WaitTime: r.poll}).WithContext(ctx))
			if err != nil {
				pw.CloseWithError(classify("allocations of "+jobID, err))
				return
			}
			index = meta.LastIndex
			a := latest(allocs)
			if a != nil && !seen[a.ID] && (a.ClientStatus != api.AllocClientStatusPending || !follow) {
				seen[a.ID] = true
				if err := r.streamAlloc(ctx, a, follow, pw); err != nil {
					pw.CloseWithError(err)
					return
				}
			}
			if !follow {
				break
			}
			st, _, err := r.status(ctx, id, 0)
			if err != nil || st.State.Terminal() {
				if a2 := latest(allocs); err == nil && a2 != nil && !seen[a2.ID] {
					continue
				}
				break
			}
		}
		pw.Close()
	}()
	return &logReader{PipeReader: pr, cancel: cancel}, nil
}

type logReader struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (l *logReader) Close() error {
	l.cancel()
	return l.PipeReader.Close()
}

// streamAlloc copies one allocation's stdout and stderr frames into w.
func (r *Runtime) streamAlloc(parent context.Context, a *api.AllocationListStub, follow bool, w io.Writer) error {
	alloc := &api.Allocation{ID: a.ID, NodeID: a.NodeID}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	if follow {
		// Whether or not the agent closes a followed stream when the task
		// dies, stop once the allocation is terminal and the tail is in.
		go func() {
			r.waitAllocTerminal(ctx, a.ID)
			select {
			case <-ctx.Done():
			case <-time.After(logTailGrace):
			}
			cancel()
		}()
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, typ := range []string{"stdout", "stderr"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cancelCh := make(chan struct{})
			stop := context.AfterFunc(ctx, func() { close(cancelCh) })
			defer stop()
			frames, errCh := r.client.AllocFS().Logs(alloc, follow, DefaultTaskName, typ, "start", 0, cancelCh, (&api.QueryOptions{}).WithContext(ctx))
			for {
				select {
				case f, ok := <-frames:
					if !ok {
						return
					}
					mu.Lock()
					_, err := w.Write(f.Data)
					mu.Unlock()
					if err != nil {
						errs[i] = err
						return
					}
				case err := <-errCh:
					if err != nil && ctx.Err() == nil && !isNotFound(err) {
						errs[i] = classify("logs of allocation "+a.ID, err)
					}
					return
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// logTailGrace is how long a followed log keeps reading after its
// allocation turned terminal, for the last frames in flight.
const logTailGrace = 2 * time.Second

// waitAllocTerminal blocks until the allocation is terminal, gone, or ctx ends.
func (r *Runtime) waitAllocTerminal(ctx context.Context, allocID string) {
	var index uint64
	for ctx.Err() == nil {
		a, meta, err := r.client.Allocations().Info(allocID, (&api.QueryOptions{WaitIndex: index, WaitTime: r.poll}).WithContext(ctx))
		if err != nil {
			if isNotFound(err) {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		if a.ClientTerminalStatus() {
			return
		}
		index = meta.LastIndex
	}
}

// Stop stops the job (deregister without purge) so that its state stays
// readable as killed; Cleanup purges it. Nomad sends the kill signal and
// force-kills after the job's kill_timeout (Config.KillTimeout); grace is
// not adjustable per call. Stopping an unknown or already stopped task is
// not an error.
func (r *Runtime) Stop(ctx context.Context, id string, _ time.Duration) error {
	jobID := JobID(id)
	job, err := r.job(ctx, jobID)
	if errors.Is(err, runtimes.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if job.Meta[MetaTaskID] != id {
		return fmt.Errorf("%w: Nomad job %s runs task %q", runtimes.ErrNotFound, jobID, job.Meta[MetaTaskID])
	}
	if job.Stop != nil && *job.Stop {
		return nil
	}
	_, _, err = r.client.Jobs().DeregisterOpts(jobID, &api.DeregisterOptions{Purge: false}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil && !isNotFound(err) {
		return classify("stop job "+jobID, err)
	}
	return nil
}

// Collect copies the task's declared outputs (every file under its output
// dir when none are declared) from the newest allocation's alloc/data/out
// to dir through the fs API, digesting each with sha256 as it streams. Only
// a finished task is collected (ErrNotDone otherwise); a declared output
// that is missing fails with ErrOutput; paths that would escape dir are
// refused. Collecting twice rewrites the same files.
func (r *Runtime) Collect(ctx context.Context, id string, dir string) ([]runtimes.Output, error) {
	jobID := JobID(id)
	st, err := r.Status(ctx, id)
	if err != nil {
		return nil, err
	}
	if !st.State.Terminal() {
		return nil, fmt.Errorf("%w: %s is %s", runtimes.ErrNotDone, id, st.State)
	}
	job, err := r.job(ctx, jobID)
	if err != nil {
		return nil, err
	}
	allocs, _, err := r.client.Jobs().Allocations(jobID, true, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, classify("allocations of "+jobID, err)
	}
	a := latest(allocs)
	if a == nil {
		return nil, fmt.Errorf("%w: task %s never ran, so it has no outputs", runtimes.ErrOutput, id)
	}
	alloc := &api.Allocation{ID: a.ID, NodeID: a.NodeID}
	if declared := job.Meta[MetaOutputs]; declared != "" {
		var names []string
		if err := json.Unmarshal([]byte(declared), &names); err != nil {
			return nil, fmt.Errorf("%w: job %s meta %s: %v", runtimes.ErrInvalid, jobID, MetaOutputs, err)
		}
		sort.Strings(names)
		out := make([]runtimes.Output, 0, len(names))
		for _, name := range names {
			o, err := r.fetch(ctx, alloc, name, dir)
			if err != nil {
				if errors.Is(err, runtimes.ErrUnavailable) || ctx.Err() != nil {
					return nil, err
				}
				return nil, fmt.Errorf("%w: %s: %s: %v", runtimes.ErrOutput, id, name, err)
			}
			out = append(out, o)
		}
		return out, nil
	}
	var out []runtimes.Output
	var walk func(rel string) error
	walk = func(rel string) error {
		infos, _, err := r.client.AllocFS().List(alloc, path.Join(allocOutDir, rel), (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			if isNotFound(err) && rel == "" {
				return nil // the task wrote no outputs
			}
			return classify("list outputs of "+a.ID, err)
		}
		sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
		for _, fi := range infos {
			if fi.Name == "" || fi.Name == "." || fi.Name == ".." || strings.ContainsAny(fi.Name, "/\\") {
				return fmt.Errorf("%w: output name %q", runtimes.ErrInvalid, fi.Name)
			}
			p := path.Join(rel, fi.Name)
			if fi.IsDir {
				if err := walk(p); err != nil {
					return err
				}
				continue
			}
			o, err := r.fetch(ctx, alloc, p, dir)
			if err != nil {
				return err
			}
			out = append(out, o)
		}
		return nil
	}
	if err := walk(""); err != nil {
		return nil, err
	}
	return out, nil
}

func (r *Runtime) fetch(ctx context.Context, alloc *api.Allocation, rel, dir string) (runtimes.Output, error) {
	local, err := runtimes.OutputPath(dir, rel)
	if err != nil {
		return runtimes.Output{}, err
	}
	body, err := r.client.AllocFS().Cat(alloc, path.Join(allocOutDir, rel), (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return runtimes.Output{}, classify("read output "+rel, err)
	}
	defer body.Close()
	o, err := runtimes.SaveOutput(local, rel, body, runtimes.MaxOutputBytes)
	if err != nil {
		return runtimes.Output{}, fmt.Errorf("nomad: collect %s: %w", rel, err)
	}
	return o, nil
}

// Cleanup deregisters and purges the job, removing it and its allocations
// from Nomad's state. Unknown IDs are not an error.
func (r *Runtime) Cleanup(ctx context.Context, id string) error {
	jobID := JobID(id)
	job, err := r.job(ctx, jobID)
	if errors.Is(err, runtimes.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if job.Meta[MetaTaskID] != id {
		return nil // not ours: leave it alone
	}
	_, _, err = r.client.Jobs().DeregisterOpts(jobID, &api.DeregisterOptions{Purge: true}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil && !isNotFound(err) {
		return classify("purge job "+jobID, err)
	}
	return nil
}

// Ping checks that the cluster answers (leader elected) and, when a node
// pool is configured, that it exists.
func (r *Runtime) Ping(ctx context.Context) error {
	return Ping(ctx, r.client, r.cfg)
}

// Ping checks a cluster: it has a leader and the configured node pool exists.
func Ping(ctx context.Context, cl *api.Client, cfg Config) error {
	var leader string
	if _, err := cl.Raw().Query("/v1/status/leader", &leader, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		return classify("contact "+cfg.Address, err)
	}
	if leader == "" {
		return fmt.Errorf("%w: %s has no leader", runtimes.ErrUnavailable, cfg.Address)
	}
	if cfg.NodePool != "" && cfg.NodePool != "all" {
		if _, _, err := cl.NodePools().Info(cfg.NodePool, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
			if isNotFound(err) {
				return fmt.Errorf("%w: node pool %q does not exist on %s", ErrConfig, cfg.NodePool, cfg.Address)
			}
			return classify("node pool "+cfg.NodePool, err)
		}
	}
	return nil
}

// classify wraps api errors with the shared runtime sentinels: 404 →
// ErrNotFound, 400 → ErrInvalid, 401/403 → ErrConfig (bad token), anything
// else (network, 5xx) → ErrUnavailable.
func classify(what string, err error) error {
	var ur api.UnexpectedResponseError
	if errors.As(err, &ur) && ur.HasStatusCode() {
		switch c := ur.StatusCode(); {
		case c == 404:
			return fmt.Errorf("%w: %s: %v", runtimes.ErrNotFound, what, err)
		case c == 400:
			return fmt.Errorf("%w: %s: %v", runtimes.ErrInvalid, what, err)
		case c == 401 || c == 403:
			return fmt.Errorf("%w: %s: permission denied (check the ACL token): %v", ErrConfig, what, err)
		}
	}
	return fmt.Errorf("%w: %s: %w", runtimes.ErrUnavailable, what, err)
}

func isNotFound(err error) bool {
	var ur api.UnexpectedResponseError
	if errors.As(err, &ur) && ur.HasStatusCode() && ur.StatusCode() == 404 {
		return true
	}
	return errors.Is(err, runtimes.ErrNotFound)
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
