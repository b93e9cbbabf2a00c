package containerd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/errdefs"

	"github.com/accordmesh/accord/runtimes"
)

// exitSIGKILL is the exit status of a process killed by SIGKILL (128+9).
const exitSIGKILL = 137

// validate rejects task specs no retry can fix.
func validate(spec runtimes.TaskSpec) error {
	if err := identifiers.Validate(spec.ID); err != nil {
		return fmt.Errorf("%w: task ID: %v", runtimes.ErrInvalid, err)
	}
	if spec.Image == "" {
		return fmt.Errorf("%w: task %s has no image", runtimes.ErrInvalid, spec.ID)
	}
	res := spec.Resources
	if res.MilliCPU < 0 || res.MemoryBytes < 0 || res.Pids < 0 || res.GPUs < 0 || res.MaxDuration < 0 {
		return fmt.Errorf("%w: task %s has negative resources", runtimes.ErrInvalid, spec.ID)
	}
	if spec.OutputDir != "" && !filepath.IsAbs(spec.OutputDir) {
		return fmt.Errorf("%w: output dir %q must be absolute", runtimes.ErrInvalid, spec.OutputDir)
	}
	if spec.NetNS != "" && !validNetNS(spec.NetNS) {
		return fmt.Errorf("%w: network namespace %q must be a named namespace under /var/run/netns or /run/netns", runtimes.ErrInvalid, spec.NetNS)
	}
	for _, in := range spec.Inputs {
		if _, err := os.Stat(in.Source); err != nil {
			return fmt.Errorf("%w: input mount: %v", runtimes.ErrInvalid, err)
		}
	}
	for _, o := range spec.Outputs {
		if _, err := cleanOutput(o); err != nil {
			return err
		}
	}
	return nil
}

// validNetNS accepts only named namespaces (ip netns, CNI) that exist.
func validNetNS(p string) bool {
	dir, name := filepath.Split(p)
	if (dir != "/var/run/netns/" && dir != "/run/netns/") || name == "" || name == "." || name == ".." {
		return false
	}
	_, err := os.Stat(p)
	return err == nil
}

// Start implements runtimes.Runtime. The container ID is the task ID, so a
// second Start (after a crash, or concurrently) finds the existing container
// and re-attaches: it creates or starts the containerd task only if no one
// did, and returns the recorded status once the task has finished.
func (r *Runtime) Start(ctx context.Context, spec runtimes.TaskSpec) (runtimes.Status, error) {
	if err := validate(spec); err != nil {
		return runtimes.Status{}, err
	}
	ctx = r.ctx(ctx)
	if st, ok := r.readStatus(spec.ID); ok {
		return st, nil
	}
	c, err := r.client.LoadContainer(ctx, spec.ID)
	if errdefs.IsNotFound(err) {
		c, err = r.create(ctx, spec)
	}
	if err != nil {
		return runtimes.Status{}, convert(err, "container "+spec.ID)
	}
	t, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		if st, ok := r.readStatus(spec.ID); ok { // stopped while pending
			return st, nil
		}
		t, err = c.NewTask(ctx, logCreator(filepath.Join(r.taskDir(spec.ID), "task.log"), r.opts.LogBytes))
		if errdefs.IsAlreadyExists(err) {
			t, err = c.Task(ctx, nil)
		} else if err != nil && permanent(ctx, err) {
			// runc could not create it (missing binary, bad mount): no retry will.
			return r.writeStatus(runtimes.Status{ID: spec.ID, State: runtimes.StateFailed,
				Reason: "create task: " + err.Error(), FinishedAt: time.Now().UTC(), Node: hostname()})
		}
	}
	if err != nil {
		return runtimes.Status{}, convert(err, "task "+spec.ID)
	}
	ts, err := t.Status(ctx)
	if err != nil {
		return runtimes.Status{}, convert(err, "task "+spec.ID)
	}
	if ts.Status == containerd.Created {
		// Taken before Start: the process runs from inside Start, so a time
		// taken after it would under-meter the task by runc's start latency.
		started := time.Now().UTC()
		if err := t.Start(ctx); err != nil {
			// A concurrent Start may have won; anything but Created is fine.
			if ts2, err2 := t.Status(ctx); err2 != nil || ts2.Status == containerd.Created {
				return runtimes.Status{}, convert(err, "start "+spec.ID)
			}
		}
		if _, err := c.SetLabels(ctx, map[string]string{labelStarted: started.Format(time.RFC3339Nano)}); err != nil {
			return runtimes.Status{}, convert(err, "label "+spec.ID)
		}
	}
	return r.Status(ctx, spec.ID)
}

// create makes the task directory and the container; on AlreadyExists it
// loads the winner's container.
func (r *Runtime) create(ctx context.Context, spec runtimes.TaskSpec) (containerd.Container, error) {
	img, err := r.resolveImage(ctx, spec.Image)
	if err != nil {
		return nil, err
	}
	dir := r.taskDir(spec.ID)
	opts, err := r.specOpts(img, spec, dir)
	if err != nil {
		return nil, err
	}
	if err := r.mountOutput(spec, filepath.Join(dir, "out")); err != nil {
		return nil, err
	}
	if err := r.mountInputs(spec, dir); err != nil {
		return nil, err
	}
	if err := writeJSONFile(filepath.Join(dir, "spec.json"), record{Spec: spec}); err != nil {
		return nil, err
	}
	labels := map[string]string{labelTask: spec.ID}
	for k, v := range spec.Labels {
		labels["accord.label."+k] = v
	}
	if d := spec.Resources.MaxDuration; d > 0 {
		labels[labelMaxDuration] = d.String()
	}
	c, err := r.client.NewContainer(ctx, spec.ID,
		containerd.WithImage(img),
		containerd.WithSnapshotter(r.opts.Snapshotter),
		r.withRemappedSnapshot(spec.ID, img),
		containerd.WithContainerLabels(labels),
		containerd.WithNewSpec(opts...))
	if errdefs.IsAlreadyExists(err) {
		return r.client.LoadContainer(ctx, spec.ID)
	}
	return c, err
}

// Status implements runtimes.Runtime. It also enforces the max duration:
// a task past its deadline is killed and will report "timeout".
func (r *Runtime) Status(ctx context.Context, id string) (runtimes.Status, error) {
	st, _, err := r.observe(r.ctx(ctx), id)
	return st, err
}

// observe derives a task's status; it returns the live task when there is one.
func (r *Runtime) observe(ctx context.Context, id string) (runtimes.Status, containerd.Task, error) {
	if st, ok := r.readStatus(id); ok {
		return st, nil, nil
	}
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return runtimes.Status{}, nil, convert(err, "container "+id)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return runtimes.Status{}, nil, convert(err, "container "+id)
	}
	st := runtimes.Status{ID: id, State: runtimes.StatePending, Node: hostname()}
	if s, ok := info.Labels[labelStarted]; ok {
		st.StartedAt, _ = time.Parse(time.RFC3339Nano, s)
	}
	t, err := c.Task(ctx, nil)
	var ts containerd.Status
	if err == nil {
		ts, err = t.Status(ctx)
	}
	if err != nil {
		// A concurrent observer may have just finished and deleted the task.
		if done, ok := r.readStatus(id); ok {
			return done, nil, nil
		}
		if errdefs.IsNotFound(err) {
			return st, nil, nil // created, not yet started
		}
		return runtimes.Status{}, nil, convert(err, "task "+id)
	}
	switch ts.Status {
	case containerd.Stopped:
		st, err := r.finalize(ctx, c, info, t, ts, st)
		return st, nil, err
	case containerd.Created:
		return st, t, nil
	}
	st.State = runtimes.StateRunning
	if st.StartedAt.IsZero() {
		st.StartedAt = info.CreatedAt
	}
	if deadline, ok := deadlineOf(info, st.StartedAt); ok && !time.Now().Before(deadline) {
		if err := r.kill(ctx, c, t, "timeout", 0); err != nil {
			return st, t, err
		}
	}
	return st, t, nil
}

func deadlineOf(info containers.Container, started time.Time) (time.Time, bool) {
	d, err := time.ParseDuration(info.Labels[labelMaxDuration])
	if err != nil || d <= 0 {
		return time.Time{}, false
	}
	return started.Add(d), true
}

// finalize turns a stopped task into its terminal status, records it, and
// deletes the containerd task (which removes its cgroup and rootfs mount).
func (r *Runtime) finalize(ctx context.Context, c containerd.Container, info containers.Container, t containerd.Task, ts containerd.Status, st runtimes.Status) (runtimes.Status, error) {
	st.ExitCode = int(ts.ExitStatus)
	st.FinishedAt = ts.ExitTime
	if st.StartedAt.IsZero() {
		st.StartedAt = info.CreatedAt
	}
	var cg cgroupStats
	if spec, err := c.Spec(ctx); err == nil && spec.Linux != nil {
		cg = readCgroup(spec.Linux.CgroupsPath)
	}
	switch reason := info.Labels[labelReason]; {
	case reason == "timeout":
		st.State, st.Reason = runtimes.StateTimedOut, "killed after max duration "+info.Labels[labelMaxDuration]
	case reason == "killed":
		st.State, st.Reason = runtimes.StateKilled, "stopped"
	case cg.OOMKills > 0:
		st.State, st.Reason = runtimes.StateOOM, fmt.Sprintf("out of memory (%d OOM kills), exit %d", cg.OOMKills, st.ExitCode)
	default:
		st.State = runtimes.StateExited
		if st.ExitCode != 0 {
			st.Reason = fmt.Sprintf("exit status %d", st.ExitCode)
		}
	}
	if !st.FinishedAt.IsZero() && st.FinishedAt.After(st.StartedAt) {
		st.Usage.WallSeconds = st.FinishedAt.Sub(st.StartedAt).Seconds()
	}
	st.Usage.CPUSeconds = cg.CPUSeconds
	st.Usage.PeakMemBytes = cg.PeakMemBytes
	st.Usage.MemGBSeconds = float64(cg.PeakMemBytes) / 1e9 * st.Usage.WallSeconds
	if spec := r.taskGPUs(info.ID); spec > 0 {
		st.Usage.GPUSeconds = float64(spec) * st.Usage.WallSeconds
	}
	st, err := r.writeStatus(st)
	if err != nil {
		return st, err
	}
	if err := deleteTask(ctx, c, t); err != nil {
		// The status is recorded; Cleanup deletes what is left.
		slog.Warn("containerd: delete finished task", "task", info.ID, "err", err)
	}
	return st, nil
}

// deleteTask deletes t, killing it if needed. A concurrent observer may
// delete it first, which surfaces as NotFound or as the shim's connection
// closing under us: both count as deleted once the task is gone.
func deleteTask(ctx context.Context, c containerd.Container, t containerd.Task) error {
	_, err := t.Delete(ctx, containerd.WithProcessKill)
	if err == nil || errdefs.IsNotFound(err) {
		return nil
	}
	if _, err2 := c.Task(ctx, nil); errdefs.IsNotFound(err2) {
		return nil
	}
	return convert(err, "delete task "+c.ID())
}

func (r *Runtime) taskGPUs(id string) int {
	rec, err := r.readRecord(id)
	if err != nil {
		return 0
	}
	if n := len(rec.Spec.Resources.GPUDevices); n > 0 {
		return n
	}
	return rec.Spec.Resources.GPUs
}

// kill records why the task is being killed (unless a reason is already
// recorded) and signals it: SIGTERM then SIGKILL after grace, or SIGKILL at
// once when grace is zero.
func (r *Runtime) kill(ctx context.Context, c containerd.Container, t containerd.Task, reason string, grace time.Duration) error {
	labels, err := c.Labels(ctx)
	if err != nil {
		return convert(err, "labels "+c.ID())
	}
	if labels[labelReason] == "" {
		if _, err := c.SetLabels(ctx, map[string]string{labelReason: reason}); err != nil {
			return convert(err, "label "+c.ID())
		}
	}
	exited, err := t.Wait(ctx)
	if err != nil {
		return convert(err, "wait "+c.ID())
	}
	if grace > 0 {
		if err := t.Kill(ctx, syscall.SIGTERM); err != nil && !errdefs.IsNotFound(err) {
			return convert(err, "kill "+c.ID())
		}
		select {
		case <-exited:
			return nil
		case <-time.After(grace):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := t.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		return convert(err, "kill "+c.ID())
	}
	select {
	case <-exited:
		return nil
	case <-time.After(stopWait):
		return fmt.Errorf("containerd: task %s did not exit %s after SIGKILL", c.ID(), stopWait)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Wait implements runtimes.Runtime, enforcing the max duration meanwhile.
func (r *Runtime) Wait(ctx context.Context, id string) (runtimes.Status, error) {
	ctx = r.ctx(ctx)
	for {
		st, t, err := r.observe(ctx, id)
		if err != nil || st.State.Terminal() {
			return st, err
		}
		if t == nil || st.State == runtimes.StatePending {
			// Created but not started: the starter is mid-way or crashed; its retry starts it.
			select {
			case <-ctx.Done():
				return st, ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		exited, err := t.Wait(ctx)
		if err != nil {
			return st, convert(err, "wait "+id)
		}
		c, err := r.client.LoadContainer(ctx, id)
		if err != nil {
			return st, convert(err, "container "+id)
		}
		timer := time.NewTimer(time.Duration(1<<63 - 1))
		if info, err := c.Info(ctx); err == nil {
			if deadline, ok := deadlineOf(info, st.StartedAt); ok {
				timer.Reset(time.Until(deadline))
			}
		}
		select {
		case <-exited:
		case <-timer.C:
			err = r.kill(ctx, c, t, "timeout", 0)
		case <-ctx.Done():
			err = ctx.Err()
		}
		timer.Stop()
		if err != nil {
			return st, err
		}
	}
}

// Stop implements runtimes.Runtime. Stopping a finished task changes
// nothing; stopping a task that was created but never started records it
// as killed so that a later Start does not run it.
func (r *Runtime) Stop(ctx context.Context, id string, grace time.Duration) error {
	ctx = r.ctx(ctx)
	st, t, err := r.observe(ctx, id)
	if err != nil || st.State.Terminal() {
		return err
	}
	if t == nil {
		st.State, st.Reason, st.FinishedAt = runtimes.StateKilled, "stopped before it started", time.Now().UTC()
		_, err := r.writeStatus(st)
		return err
	}
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return convert(err, "container "+id)
	}
	if err := r.kill(ctx, c, t, "killed", grace); err != nil {
		return err
	}
	_, _, err = r.observe(ctx, id)
	return err
}

// Cleanup implements runtimes.Runtime: it kills the task if it still runs,
// deletes the task, the container and its snapshot, and removes the task
// directory (log, outputs, status). Collect outputs first.
func (r *Runtime) Cleanup(ctx context.Context, id string) error {
	if err := identifiers.Validate(id); err != nil {
		return fmt.Errorf("%w: task ID: %v", runtimes.ErrInvalid, err)
	}
	ctx = r.ctx(ctx)
	c, err := r.client.LoadContainer(ctx, id)
	switch {
	case errdefs.IsNotFound(err):
	case err != nil:
		return convert(err, "container "+id)
	default:
		if err := r.deleteContainer(ctx, c); err != nil {
			return err
		}
	}
	if err := unmountUnder(r.taskDir(id)); err != nil {
		return err
	}
	if err := os.RemoveAll(r.taskDir(id)); err != nil {
		return fmt.Errorf("containerd: remove task dir: %w", err)
	}
	return nil
}

func (r *Runtime) deleteContainer(ctx context.Context, c containerd.Container) error {
	t, err := c.Task(ctx, nil)
	if err == nil {
		if err := deleteTask(ctx, c, t); err != nil {
			return err
		}
	} else if !errdefs.IsNotFound(err) {
		return convert(err, "task "+c.ID())
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return convert(err, "delete container "+c.ID())
	}
	return nil
}

// Purge removes everything this runtime created in its namespace:
// containers (and their tasks and snapshots), images, and the namespace
// itself, plus the task directories. For tests and `accord` uninstall.
func (r *Runtime) Purge(ctx context.Context) error {
	ctx = r.ctx(ctx)
	cs, err := r.client.Containers(ctx)
	if err != nil {
		return convert(err, "list containers")
	}
	for _, c := range cs {
		if err := r.deleteContainer(ctx, c); err != nil {
			return err
		}
	}
	is := r.client.ImageService()
	imgs, err := is.List(ctx)
	if err != nil {
		return convert(err, "list images")
	}
	for i, img := range imgs {
		var opts []images.DeleteOpt
		if i == len(imgs)-1 {
			opts = append(opts, images.SynchronousDelete()) // collect content and snapshots now
		}
		if err := is.Delete(ctx, img.Name, opts...); err != nil && !errdefs.IsNotFound(err) {
			return convert(err, "delete image "+img.Name)
		}
	}
	if err := r.client.NamespaceService().Delete(ctx, r.opts.Namespace); err != nil && !errdefs.IsNotFound(err) {
		return convert(err, "delete namespace "+r.opts.Namespace)
	}
	if err := unmountUnder(filepath.Join(r.opts.StateDir, "tasks")); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(r.opts.StateDir, "tasks")); err != nil {
		return fmt.Errorf("containerd: %w", err)
	}
	return os.MkdirAll(filepath.Join(r.opts.StateDir, "tasks"), 0o700)
}

// permanent reports whether an error from containerd will recur on retry:
// anything but an unreachable daemon or an ended context.
func permanent(ctx context.Context, err error) bool {
	return ctx.Err() == nil && !errdefs.IsUnavailable(err) && !errdefs.IsCanceled(err) &&
		!errdefs.IsDeadlineExceeded(err) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}
