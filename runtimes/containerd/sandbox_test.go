package containerd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/accordmesh/accord/runtimes"
)

// TestSandboxSpec checks the OCI spec every task runs under; no daemon is
// needed.
func TestSandboxSpec(t *testing.T) {
	r := &Runtime{opts: Options{Pids: DefaultPids, UserNSBase: DefaultUserNSBase, TmpBytes: 8 << 20}}
	task := runtimes.TaskSpec{ID: "t", Image: "x", Command: []string{"true"},
		Inputs: []runtimes.Mount{{Source: "/data/set", Target: "/in/set"}}}
	spec := generateSpec(t, r, task, "/state/tasks/t")
	var nss []specs.LinuxNamespaceType
	for _, ns := range spec.Linux.Namespaces {
		if ns.Path != "" {
			t.Errorf("joins the existing %s namespace %s", ns.Type, ns.Path)
		}
		nss = append(nss, ns.Type)
	}
	for _, want := range []specs.LinuxNamespaceType{specs.UserNamespace, specs.NetworkNamespace, specs.PIDNamespace, specs.MountNamespace, specs.IPCNamespace} {
		if !slices.Contains(nss, want) {
			t.Errorf("no new %s namespace in %v", want, nss)
		}
	}
	want := []specs.LinuxIDMapping{{ContainerID: 0, HostID: DefaultUserNSBase, Size: userNSSize}}
	if !slices.Equal(spec.Linux.UIDMappings, want) || !slices.Equal(spec.Linux.GIDMappings, want) {
		t.Errorf("id mappings %v %v, want %v", spec.Linux.UIDMappings, spec.Linux.GIDMappings, want)
	}
	c := spec.Process.Capabilities
	if len(c.Bounding)+len(c.Effective)+len(c.Permitted)+len(c.Inheritable)+len(c.Ambient) != 0 {
		t.Errorf("capabilities %+v, want none", c)
	}
	if !spec.Process.NoNewPrivileges || !spec.Root.Readonly {
		t.Errorf("no_new_privileges %v, read-only root %v", spec.Process.NoNewPrivileges, spec.Root.Readonly)
	}
	if spec.Linux.Seccomp == nil || spec.Linux.Seccomp.DefaultAction != specs.ActErrno {
		t.Fatalf("seccomp %+v, want containerd's default profile", spec.Linux.Seccomp)
	}
	for _, sc := range spec.Linux.Seccomp.Syscalls {
		for _, name := range sc.Names {
			if sc.Action == specs.ActAllow && slices.Contains([]string{"mount", "unshare", "setns", "kexec_load", "bpf", "open_by_handle_at"}, name) {
				t.Errorf("seccomp allows %s without a capability", name)
			}
		}
	}
	for _, p := range []string{"/proc/kcore", "/proc/keys", "/proc/timer_list"} {
		if !slices.Contains(spec.Linux.MaskedPaths, p) {
			t.Errorf("%s not masked: %v", p, spec.Linux.MaskedPaths)
		}
	}
	for _, p := range []string{"/proc/sys", "/proc/sysrq-trigger", "/proc/bus"} {
		if !slices.Contains(spec.Linux.ReadonlyPaths, p) {
			t.Errorf("%s not read-only: %v", p, spec.Linux.ReadonlyPaths)
		}
	}
	mounts := map[string]specs.Mount{}
	for _, m := range spec.Mounts {
		mounts[m.Destination] = m
	}
	if m := mounts["/tmp"]; m.Type != "tmpfs" || !slices.Contains(m.Options, "size=8388608") {
		t.Errorf("/tmp %+v, want an 8 MiB tmpfs", m)
	}
	if m := mounts["/out"]; m.Source != "/state/tasks/t/out" || !slices.Contains(m.Options, "nosuid") {
		t.Errorf("/out %+v", m)
	}
	if m := mounts["/in/set"]; m.Source != "/state/tasks/t/in/0" || !slices.Contains(m.Options, "ro") {
		t.Errorf("input %+v, want the read-only view", m)
	}
}

// generateSpec builds the OCI spec a task in taskDir would run with; no
// daemon is needed.
func generateSpec(t *testing.T, r *Runtime, task runtimes.TaskSpec, taskDir string) *specs.Spec {
	t.Helper()
	opts, err := r.specOpts(nil, task, taskDir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := namespaces.WithNamespace(context.Background(), "accord-test")
	spec, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: task.ID}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// sandboxProbe runs in the task; each line is "name result".
const sandboxProbe = `
echo "id $(busybox id -u):$(busybox id -g)"
touch /rootfs-file 2>/dev/null && echo "rootfs writable" || echo "rootfs refused"
dd if=/dev/zero of=/tmp/fill bs=1M count=32 2>/dev/null && echo "tmp unbounded" || echo "tmp bounded $(wc -c < /tmp/fill)"
rm /tmp/fill; echo ok > /tmp/small && echo "tmp works"
dd if=/dev/zero of=/out/big bs=1M count=32 2>/dev/null && echo "out unbounded" || echo "out bounded $(wc -c < /out/big)"
rm /out/big; echo result > /out/result && echo "out works"
cat /in/secret/secret.txt > /out/copy && echo "input readable"
echo x >> /in/secret/secret.txt 2>/dev/null && echo "input writable" || echo "input read-only"
busybox chown 1234:1234 /tmp/small 2>/dev/null && echo "chown allowed" || echo "chown refused"
busybox mknod /tmp/null c 1 3 2>/dev/null && echo "mknod allowed" || echo "mknod refused"
busybox unshare -m true 2>/dev/null && echo "unshare allowed" || echo "unshare refused"
busybox mount -t tmpfs none /tmp 2>/dev/null && echo "mount allowed" || echo "mount refused"
echo "interfaces $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ',')"
echo "routes $(tail -n +2 /proc/net/route | wc -l)"
sleep 2
`

// TestSandboxed runs hostile operations inside a task and checks from the
// host that the task's processes are not root there.
func TestSandboxed(t *testing.T) {
	r := newRuntime(t, func(o *Options) { o.TmpBytes, o.OutputBytes = 8<<20, 4<<20 })
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.Mkdir(secret, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secret, "secret.txt"), []byte("only root\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := sh(t, "sandboxed", sandboxProbe)
	spec.Inputs = []runtimes.Mount{{Source: secret, Target: "/in/secret"}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := r.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	c, err := r.client.LoadContainer(r.ctx(ctx), spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	task, err := c.Task(r.ctx(ctx), nil)
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", task.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	host := fmt.Sprint(DefaultUserNSBase)
	for _, want := range []string{"Uid:\t" + strings.Repeat(host+"\t", 3) + host, "Gid:\t" + strings.Repeat(host+"\t", 3) + host,
		"CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2"} {
		if !strings.Contains(string(status), want+"\n") {
			t.Errorf("host's view of the task lacks %q:\n%s", want, status)
		}
	}
	if st, err := r.Wait(ctx, spec.ID); err != nil || st.State != runtimes.StateExited || st.ExitCode != 0 {
		t.Fatalf("status %+v %v", st, err)
	}
	log := readLog(t, r, spec.ID)
	for _, want := range []string{"id 0:0", "rootfs refused", "tmp bounded 8388608", "tmp works",
		"out bounded 4194304", "out works", "input readable", "input read-only", "chown refused",
		"mknod refused", "unshare refused", "mount refused", "interfaces lo,", "routes 0"} {
		if !strings.Contains(log, want+"\n") {
			t.Errorf("task log lacks %q:\n%s", want, log)
		}
	}
	outs, err := r.Collect(ctx, spec.ID, t.TempDir())
	if err != nil || len(outs) != 2 {
		t.Fatalf("collect: %+v %v", outs, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(secret, "secret.txt"), &st); err != nil || st.Uid != 0 || st.Mode&0o777 != 0o600 || st.Size != 10 {
		t.Fatalf("the input changed on the host: %+v %v", st, err)
	}
	if err := r.Cleanup(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	assertClean(t, r)
}

// TestTaskLogBounded checks that a task printing far more than the log
// limit runs to its end with task.log cut at the limit.
func TestTaskLogBounded(t *testing.T) {
	const limit = 64 << 10
	r := newRuntime(t, func(o *Options) { o.LogBytes = limit })
	spec := sh(t, "chatty", "echo first; yes 0123456789 | head -c 50000000; echo; echo last")
	spec.Resources.MaxDuration = time.Minute
	if st := runToEnd(t, r, spec); st.State != runtimes.StateExited || st.ExitCode != 0 {
		t.Fatalf("status %+v", st)
	}
	log := readLog(t, r, spec.ID)
	if !strings.HasPrefix(log, "first\n") || strings.Contains(log, "last") || !strings.Contains(log, "reached its limit of 65536 bytes") {
		t.Fatalf("log of %d bytes: %q…%q", len(log), log[:min(len(log), 64)], log[max(0, len(log)-128):])
	}
	if len(log) > limit+200 {
		t.Fatalf("log is %d bytes, limit %d", len(log), limit)
	}
	if err := r.Cleanup(context.Background(), spec.ID); err != nil {
		t.Fatal(err)
	}
	assertClean(t, r)
}

func readLog(t *testing.T, r *Runtime, id string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.taskDir(id), "task.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestOpenSandboxOptions checks that the sandbox's limits are options of
// the registered factory and that nonsense is refused before any daemon
// is reached.
func TestOpenSandboxOptions(t *testing.T) {
	for _, o := range []map[string]string{
		{"tmp_bytes": "-1"}, {"log_bytes": "lots"}, {"output_bytes": "1e9"},
		{"userns_base": "0"}, {"userns_base": "4294967295"}, {"pids": "x"},
	} {
		if _, err := open(context.Background(), o); !errors.Is(err, runtimes.ErrInvalid) {
			t.Errorf("open(%v) = %v, want ErrInvalid", o, err)
		}
	}
	need(t)
	rt, err := open(context.Background(), map[string]string{"state_dir": t.TempDir(), "address": shared.Address,
		"userns_base": "2000000", "tmp_bytes": "1024", "output_bytes": "2048", "log_bytes": "4096"})
	if err != nil {
		t.Fatal(err)
	}
	r := rt.(*Runtime)
	defer r.Close()
	if o := r.opts; o.UserNSBase != 2000000 || o.TmpBytes != 1024 || o.OutputBytes != 2048 || o.LogBytes != 4096 {
		t.Fatalf("options %+v", o)
	}
}

// TestConcurrentRemap starts tasks of one image at once: they race to
// create the image's remapped snapshot, and each must start.
func TestConcurrentRemap(t *testing.T) {
	r := newRuntime(t)
	// Generous: CI runs the scale test beside this one on two cores.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := r.Prepare(ctx, busybox(t)); err != nil {
		t.Fatal(err)
	}
	const n = 4
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := r.Start(ctx, sh(t, fmt.Sprintf("race-%d", i), "true"))
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for i := range n {
		id := fmt.Sprintf("race-%d", i)
		if st, err := r.Wait(ctx, id); err != nil || st.State != runtimes.StateExited || st.ExitCode != 0 {
			t.Errorf("%s: %+v %v", id, st, err)
		}
		if err := r.Cleanup(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	assertClean(t, r)
	// The image keeps its remapped copy through a garbage collection,
	// forced by deleting another image synchronously.
	nctx := r.ctx(ctx)
	img, err := r.resolveImage(nctx, busybox(t))
	if err != nil {
		t.Fatal(err)
	}
	is := r.client.ImageService()
	if _, err := is.Create(nctx, images.Image{Name: "accord.local/gc-trigger:1", Target: img.Target()}); err != nil {
		t.Fatal(err)
	}
	if err := is.Delete(nctx, "accord.local/gc-trigger:1", images.SynchronousDelete()); err != nil {
		t.Fatal(err)
	}
	copies := 0
	err = r.client.SnapshotService(r.opts.Snapshotter).Walk(nctx, func(_ context.Context, info snapshots.Info) error {
		if strings.HasPrefix(info.Name, "accord-userns-") {
			copies++
		}
		return nil
	})
	if err != nil || copies != 1 {
		t.Fatalf("%d remapped copies after GC (%v), want 1", copies, err)
	}
}
