package nomadtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/runtimes/nomad"
)

// Harness is what the portable suite needs: a runtime on some Nomad (this
// double or a real agent) and an image that has /bin/sh.
type Harness struct {
	Runtime *nomad.Runtime
	Image   string        // e.g. "busybox:1.36"; ignored by the double
	Timeout time.Duration // per case; default 2 minutes
	Prefix  string        // task ID prefix, unique per run
}

// RunSuite runs the runtime behaviours that hold on any Nomad: inventory
// snapshot, run to completion with logs and collected outputs, non-zero
// exit, cancel, idempotent re-attach, refusal of a different task under the
// same ID, and a plan failure that names its constraint. Against the double
// use ShellBehavior so that the scripts below mean what they say.
func RunSuite(t *testing.T, h Harness) {
	if h.Timeout == 0 {
		h.Timeout = 2 * time.Minute
	}
	if h.Image == "" {
		h.Image = "busybox:1.36"
	}
	if h.Prefix == "" {
		h.Prefix = fmt.Sprintf("suite-%d", time.Now().UnixNano())
	}
	rt := h.Runtime
	spec := func(name, script string) runtimes.TaskSpec {
		return runtimes.TaskSpec{
			ID: h.Prefix + "." + name + ".1", Image: h.Image, Command: []string{"sh", "-c", script},
			Env:       map[string]string{"ACCORD_SUITE": "1"},
			Resources: runtimes.Resources{MilliCPU: 100, MemoryBytes: 64 << 20, MaxDuration: 10 * time.Minute},
		}
	}
	ctxFor := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
		t.Cleanup(cancel)
		return ctx
	}
	cleanup := func(t *testing.T, id string) {
		t.Cleanup(func() { _ = rt.Cleanup(context.Background(), id) })
	}

	t.Run("Inventory", func(t *testing.T) {
		c, err := nomad.Snapshot(ctxFor(t), rt.Client(), rt.Config())
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Nodes) == 0 {
			t.Fatal("no nodes in the pool")
		}
		for _, n := range c.Nodes {
			if n.FreeCPUMHz > n.CPUMHz || n.FreeMemoryMB > n.MemoryMB || n.FreeCPUMHz < 0 {
				t.Errorf("node %s: free %d MHz/%d MB exceeds total %d/%d", n.Name, n.FreeCPUMHz, n.FreeMemoryMB, n.CPUMHz, n.MemoryMB)
			}
			for _, g := range n.GPUs {
				if g.Free && (!g.Healthy || !n.Schedulable) {
					t.Errorf("GPU %s is free but unhealthy or on an unschedulable node", g.ID)
				}
			}
		}
	})

	t.Run("RunToCompletion", func(t *testing.T) {
		ctx := ctxFor(t)
		s := spec("complete", "echo hello-accord; echo 42 > $ACCORD_OUTPUT_DIR/answer.txt; exit 0")
		cleanup(t, s.ID)
		st, err := rt.Start(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != runtimes.StateRunning && !st.State.Terminal() {
			t.Fatalf("Start returned %s, want running or terminal", st.State)
		}
		st, err = rt.Wait(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != runtimes.StateExited || st.ExitCode != 0 {
			t.Fatalf("Wait = %s exit %d (%s), want exited 0", st.State, st.ExitCode, st.Reason)
		}
		if st.Node == "" || st.StartedAt.IsZero() || st.FinishedAt.Before(st.StartedAt) {
			t.Errorf("status lacks node or times: %+v", st)
		}
		if st.Usage.WallSeconds <= 0 || st.Usage.CPUSeconds <= 0 {
			t.Errorf("usage not metered: %+v", st.Usage)
		}
		rc, err := rt.Logs(ctx, s.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		logs, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(logs), "hello-accord") {
			t.Errorf("logs %q lack hello-accord", logs)
		}
		dir := t.TempDir()
		outs, err := rt.Collect(ctx, s.ID, dir)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte("42\n"))
		if len(outs) != 1 || outs[0].Path != "answer.txt" || outs[0].Size != 3 || outs[0].SHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("Collect = %+v, want answer.txt with sha256 of \"42\\n\"", outs)
		}
		if err := rt.Cleanup(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := rt.Status(ctx, s.ID); !errors.Is(err, runtimes.ErrNotFound) {
			t.Fatalf("Status after Cleanup: %v, want ErrNotFound", err)
		}
		if err := rt.Cleanup(ctx, s.ID); err != nil {
			t.Fatalf("second Cleanup: %v", err)
		}
	})

	t.Run("NonZeroExit", func(t *testing.T) {
		ctx := ctxFor(t)
		s := spec("fail", "echo failing; exit 3")
		cleanup(t, s.ID)
		if _, err := rt.Start(ctx, s); err != nil {
			t.Fatal(err)
		}
		st, err := rt.Wait(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != runtimes.StateExited || st.ExitCode != 3 {
			t.Fatalf("Wait = %s exit %d (%s), want exited 3", st.State, st.ExitCode, st.Reason)
		}
	})

	t.Run("Cancel", func(t *testing.T) {
		ctx := ctxFor(t)
		s := spec("cancel", "sleep 300")
		cleanup(t, s.ID)
		st, err := rt.Start(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != runtimes.StateRunning {
			t.Fatalf("Start = %s, want running", st.State)
		}
		if err := rt.Stop(ctx, s.ID, time.Second); err != nil {
			t.Fatal(err)
		}
		if err := rt.Stop(ctx, s.ID, time.Second); err != nil {
			t.Fatalf("second Stop: %v", err)
		}
		st, err = rt.Wait(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != runtimes.StateKilled {
			t.Fatalf("after Stop: %s (%s), want killed", st.State, st.Reason)
		}
	})

	t.Run("Reattach", func(t *testing.T) {
		ctx := ctxFor(t)
		s := spec("reattach", "sleep 300")
		cleanup(t, s.ID)
		first, err := rt.Start(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		second, err := rt.Start(ctx, s)
		if err != nil {
			t.Fatalf("retried Start: %v", err)
		}
		if first.Node != second.Node || !first.StartedAt.Equal(second.StartedAt) {
			t.Fatalf("retried Start did not re-attach: %+v vs %+v", first, second)
		}
		other := s
		other.Command = []string{"sh", "-c", "echo different"}
		if _, err := rt.Start(ctx, other); !errors.Is(err, runtimes.ErrInvalid) {
			t.Fatalf("Start of a different task under the same ID: %v, want ErrInvalid", err)
		}
		if err := rt.Stop(ctx, s.ID, 0); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("PlanFailureNamesConstraint", func(t *testing.T) {
		ctx := ctxFor(t)
		s := spec("noplace", "exit 0")
		s.Resources.GPUs = 1
		s.Resources.GPUModel = "NoSuchGPU-XYZ"
		cleanup(t, s.ID)
		_, err := rt.Start(ctx, s)
		if !errors.Is(err, nomad.ErrPlacement) || !errors.Is(err, runtimes.ErrInvalid) {
			t.Fatalf("Start = %v, want ErrPlacement and ErrInvalid", err)
		}
		if !strings.Contains(err.Error(), "NoSuchGPU") {
			t.Fatalf("error %q does not name the device request", err)
		}
		if _, err := rt.Status(ctx, s.ID); !errors.Is(err, runtimes.ErrNotFound) {
			t.Fatalf("a failed plan registered a job: Status = %v", err)
		}
	})

	t.Run("LogsFollow", func(t *testing.T) {
		ctx := ctxFor(t)
		s := spec("follow", "echo first; sleep 1; echo second")
		cleanup(t, s.ID)
		if _, err := rt.Start(ctx, s); err != nil {
			t.Fatal(err)
		}
		rc, err := rt.Logs(ctx, s.ID, true)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "first") || !strings.Contains(string(b), "second") {
			t.Fatalf("followed logs %q lack first/second", b)
		}
		st, err := rt.Status(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !st.State.Terminal() {
			t.Fatalf("follow ended while the task is %s", st.State)
		}
	})
}
