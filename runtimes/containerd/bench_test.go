package containerd

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/runtimes"
)

// BenchmarkStartExitCleanup measures one trivial container from start to
// exit to cleanup through Accord (Start, Wait, Cleanup) and, interleaved in
// the same run against the same daemon and image, through `ctr run --rm`.
// It reports both and their ratio (target ≤ 1.2). `make bench-containerd` runs it.
func BenchmarkStartExitCleanup(b *testing.B) {
	need(b)
	ctr, err := exec.LookPath("ctr")
	if err != nil {
		b.Skip("the comparison needs ctr (Debian containerd package)")
	}
	r := newRuntime(b)
	ctx := context.Background()
	image := busybox(b)
	if _, err := r.Prepare(ctx, image); err != nil {
		b.Fatal(err)
	}
	name := archiveName(filepath.Clean(strings.TrimPrefix(image, ArchivePrefix)))

	run := func(i int) (accord, viaCtr time.Duration) {
		id := fmt.Sprintf("bench-%d", i)
		t0 := time.Now()
		spec := runtimes.TaskSpec{ID: id, Image: image, Command: []string{"/bin/true"}}
		if _, err := r.Start(ctx, spec); err != nil {
			b.Fatal(err)
		}
		st, err := r.Wait(ctx, id)
		if err != nil || st.State != runtimes.StateExited || st.ExitCode != 0 {
			b.Fatalf("accord run: %+v %v", st, err)
		}
		if err := r.Cleanup(ctx, id); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		out, err := exec.Command(ctr, "--address", r.opts.Address, "--namespace", r.Namespace(),
			"run", "--rm", "--snapshotter", r.opts.Snapshotter, name, "ctr-"+id, "/bin/true").CombinedOutput()
		if err != nil {
			b.Fatalf("ctr run: %v\n%s", err, out)
		}
		return t1.Sub(t0), time.Since(t1)
	}
	run(1_000_000) // warm both paths
	b.ResetTimer()
	var accord, viaCtr time.Duration
	for i := range b.N {
		a, c := run(i)
		accord += a
		viaCtr += c
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(accord.Milliseconds())/n, "accord-ms/op")
	b.ReportMetric(float64(viaCtr.Milliseconds())/n, "ctr-ms/op")
	b.ReportMetric(float64(accord)/float64(viaCtr), "ratio")
}
