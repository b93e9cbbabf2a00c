package containerd

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	apitasks "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/runtimes/containerd/ocilayout"
)

// shared is the private daemon most tests use, started by TestMain through
// StartDaemon; skipReason says why integration tests cannot run.
var (
	shared     *Daemon
	skipReason string
	scratch    string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	scratch, err = os.MkdirTemp("", "accord-ctd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(scratch)
	switch {
	case os.Getuid() != 0:
		skipReason = "containerd integration tests need root"
	case !have("containerd") || !have("runc"):
		skipReason = "containerd integration tests need the containerd and runc binaries (Debian: apt-get install containerd runc)"
	case !haveFile(ocilayoutBusybox):
		skipReason = "containerd integration tests need " + ocilayoutBusybox + " (Debian: apt-get install busybox-static)"
	}
	if skipReason == "" && os.Getenv(helperEnv) == "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		shared, err = StartDaemon(ctx, filepath.Join(scratch, "daemon"))
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "start private containerd:", err)
			return 1
		}
		defer StopDaemon(shared.Dir, 5*time.Second)
	}
	return m.Run()
}

const ocilayoutBusybox = "/bin/busybox"

// helperEnv makes the test binary act as the crashing client in TestReattachAfterClientKilled.
const helperEnv = "ACCORD_CONTAINERD_HELPER_DIR"

func have(bin string) bool { _, err := exec.LookPath(bin); return err == nil }

func haveFile(p string) bool { _, err := os.Stat(p); return err == nil }

func need(t testing.TB) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// newRuntime opens a runtime on the shared daemon with its own state dir
// (hence its own namespace), purged when the test ends; with changes the
// options first.
func newRuntime(t testing.TB, with ...func(*Options)) *Runtime {
	t.Helper()
	need(t)
	opts := Options{StateDir: t.TempDir(), Address: shared.Address}
	for _, f := range with {
		f(&opts)
	}
	r, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Purge(context.Background()); err != nil {
			t.Errorf("purge: %v", err)
		}
		r.Close()
	})
	return r
}

var busyboxOnce = sync.OnceValues(func() (string, error) {
	p := filepath.Join(scratch, "busybox.tar")
	_, err := ocilayout.WriteFile(p, ocilayout.Image{
		Name:  "accord.local/test/busybox:latest",
		Files: ocilayout.Busybox(ocilayoutBusybox),
		Cmd:   []string{"/bin/sh"},
		Env:   []string{"PATH=/bin"},
	})
	return p, err
})

// busybox returns the image reference of a busybox archive.
func busybox(t testing.TB) string {
	t.Helper()
	p, err := busyboxOnce()
	if err != nil {
		t.Fatal(err)
	}
	return ArchivePrefix + p
}

// sh returns a task spec running script under busybox sh.
func sh(t testing.TB, id, script string) runtimes.TaskSpec {
	return runtimes.TaskSpec{ID: id, Image: busybox(t), Command: []string{"sh", "-c", script}}
}

// runToEnd prepares, starts and waits for a task.
func runToEnd(t *testing.T, r *Runtime, spec runtimes.TaskSpec) runtimes.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := r.Prepare(ctx, spec.Image); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	st, err := r.Wait(ctx, spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// assertClean checks, through the containerd client and /proc/self/mountinfo,
// that no container, task, active snapshot, lease or mount of r's namespace is left.
func assertClean(t *testing.T, r *Runtime) {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), r.Namespace())
	cs, err := r.Client().Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		t.Errorf("leaked container %s", c.ID())
	}
	tasks, err := r.Client().TaskService().List(ctx, &apitasks.ListTasksRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range tasks.Tasks {
		t.Errorf("leaked task %s (pid %d)", tk.ID, tk.Pid)
	}
	err = r.Client().SnapshotService(r.opts.Snapshotter).Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind != snapshots.KindCommitted {
			t.Errorf("leaked %s snapshot %s", info.Kind, info.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	leases, err := r.Client().LeasesService().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leases {
		t.Errorf("leaked lease %s", l.ID)
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "/"+r.Namespace()+"/") || strings.Contains(sc.Text(), r.opts.StateDir) {
			t.Errorf("leaked mount: %s", sc.Text())
		}
	}
	entries, _ := os.ReadDir(filepath.Join(r.opts.StateDir, "tasks"))
	for _, e := range entries {
		t.Errorf("leaked task dir %s", e.Name())
	}
}
