package containerd

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/accordmesh/accord/runtimes"
)

// reattachSpec appends a line to /out/runs each time a container runs it.
func reattachSpec(image string) runtimes.TaskSpec {
	return runtimes.TaskSpec{
		ID:      "job-r.train.1",
		Image:   image,
		Command: []string{"sh", "-c", "echo ran >> /out/runs; sleep 3; echo ok > /out/result"},
		Outputs: []string{"runs", "result"},
	}
}

// TestReattachHelper is the client that gets killed: run as a subprocess by
// TestReattachAfterClientKilled, it opens a runtime with a managed daemon,
// starts the task, says so, and blocks in Wait until it is SIGKILLed.
func TestReattachHelper(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper process for TestReattachAfterClientKilled")
	}
	ctx := context.Background()
	r, err := New(ctx, Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	spec := reattachSpec(os.Getenv(helperEnv + "_IMAGE"))
	if _, err := r.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("STARTED\n")
	r.Wait(ctx, spec.ID)
	t.Fatal("the helper should have been killed before the task ended")
}

func TestReattachAfterClientKilled(t *testing.T) {
	need(t)
	dir := t.TempDir()
	image := busybox(t)
	t.Cleanup(func() { StopDaemon(filepath.Join(dir, "daemon"), 5*time.Second) })

	cmd := exec.Command(os.Args[0], "-test.run", "^TestReattachHelper$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir, helperEnv+"_IMAGE="+image)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "STARTED") {
				started <- true
			}
		}
		close(started)
	}()
	select {
	case ok := <-started:
		if !ok {
			t.Fatal("helper exited before starting the task")
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatal("helper did not start the task")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	// A new client with the same state dir finds the same daemon and task.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pid, err := readPID(filepath.Join(dir, "daemon", "containerd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(ctx, Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Daemon().PID != pid {
		t.Fatalf("daemon restarted: pid %d, was %d", r.Daemon().PID, pid)
	}
	spec := reattachSpec(image)
	st, err := r.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != runtimes.StateRunning {
		t.Fatalf("re-attached task is %s, want running (did it restart?)", st.State)
	}
	st, err = r.Wait(ctx, spec.ID)
	if err != nil || st.State != runtimes.StateExited || st.ExitCode != 0 {
		t.Fatalf("status %+v %v", st, err)
	}
	outs, err := r.Collect(ctx, spec.ID, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 2 || outs[1].Path != "runs" {
		t.Fatalf("outputs %+v", outs)
	}
	runs, err := os.ReadFile(outs[1].Local)
	if err != nil {
		t.Fatal(err)
	}
	if string(runs) != "ran\n" {
		t.Fatalf("the task ran %d times: %q", strings.Count(string(runs), "ran"), runs)
	}
	cs, err := r.Client().Containers(r.ctx(ctx))
	if err != nil || len(cs) != 1 {
		t.Fatalf("containers: %d %v", len(cs), err)
	}
	if err := r.Cleanup(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	assertClean(t, r)
	if err := r.Purge(ctx); err != nil {
		t.Fatal(err)
	}
}
