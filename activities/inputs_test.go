package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/specs"
	"github.com/accordmesh/accord/workflows"
)

// fakeInputs is an InputStore over a map: digest -> owning tenant. It
// materializes a digest as a file named after it under dst.
type fakeInputs struct {
	owner        map[string]string
	materialized []string
}

func (f *fakeInputs) Owns(tenant, digest string) (bool, error) {
	return f.owner[digest] == tenant, nil
}

func (f *fakeInputs) Materialize(_ context.Context, digest, dst string) (string, error) {
	if _, ok := f.owner[digest]; !ok {
		return "", artifacts.ErrNotFound
	}
	f.materialized = append(f.materialized, digest)
	p := filepath.Join(dst, strings.TrimPrefix(digest, "sha256:"))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return "", err
	}
	return p, os.WriteFile(p, []byte("blob"), 0o444)
}

func digestOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// inputsFixture is a worker with one --host-inputs root holding data.txt
// and, outside it, a secret; plus a fake runtime and artifact store.
type inputsFixture struct {
	a            *Activities
	rt           *fakeRuntime
	store        *fakeInputs
	root, secret string
}

func newInputsFixture(t *testing.T) *inputsFixture {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{root, outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "data.txt"), "data")
	write(filepath.Join(root, "image.tar"), "archive")
	secret := filepath.Join(outside, "worker.key")
	write(secret, "secret")
	rt := newFake()
	store := &fakeInputs{owner: map[string]string{digestOf("mine"): "demo", digestOf("theirs"): "other"}}
	a := &Activities{Runtimes: map[string]runtimes.Runtime{"fake": rt}, JobsDir: filepath.Join(base, "jobs"),
		HostInputs: []string{root}, Inputs: store}
	return &inputsFixture{a: a, rt: rt, store: store, root: root, secret: secret}
}

// start starts the quickstart's train task with the given image and inputs.
func (f *inputsFixture) start(t *testing.T, image string, inputs ...specs.Input) (runtimes.TaskSpec, error) {
	t.Helper()
	plan, _ := quickstartPlan(t)
	plan.Tasks[0].Image = image
	plan.Tasks[0].Inputs = inputs
	raw, _ := json.Marshal(plan)
	run := workflows.RunID("job-1", "train", 1)
	_, err := f.a.StartTask(context.Background(), workflows.StartTaskInput{JobID: "job-1", Task: "train", Attempt: 1, RunID: run,
		PlanInput: workflows.PlanInput{PlanJSON: raw}, Award: workflows.NegotiateOutput{Runtime: "fake"}})
	if err != nil {
		return runtimes.TaskSpec{}, err
	}
	return f.rt.tasks[run].spec, nil
}

// refused checks err is a permanent error of type typ whose message holds
// want and no host path beyond what the spec gave (show).
func refused(t *testing.T, what string, err error, typ, want string, hidden ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: started, want refused", what)
	}
	if appErrType(err) != typ || !strings.Contains(err.Error(), want) {
		t.Fatalf("%s: %v (type %q), want %s containing %q", what, err, appErrType(err), typ, want)
	}
	for _, h := range hidden {
		if strings.Contains(err.Error(), h) {
			t.Errorf("%s: error %q reveals %s", what, err, h)
		}
	}
}

// Host path inputs mount only under --host-inputs roots: a path outside
// them, one that climbs out with .., and one that leaves through a symlink
// are refused without naming the roots or the symlink's target; a symlink
// inside the root is followed and the real path mounted.
func TestHostPathInputsStayInRoots(t *testing.T) {
	f := newInputsFixture(t)
	in := func(p string) specs.Input { return specs.Input{Name: "x", Path: p, Target: "/in/x"} }

	spec, err := f.start(t, testImage, in(filepath.Join(f.root, "data.txt")))
	if err != nil || len(spec.Inputs) != 1 || spec.Inputs[0].Source != filepath.Join(f.root, "data.txt") {
		t.Fatalf("input inside the root: %+v %v", spec.Inputs, err)
	}
	_, err = f.start(t, testImage, in(f.secret))
	refused(t, "outside", err, workflows.ErrTypePolicy, "is outside the worker's --host-inputs roots", f.root)
	_, err = f.start(t, testImage, in(f.root+"/../outside/worker.key"))
	refused(t, "dot-dot", err, workflows.ErrTypePolicy, "--host-inputs", f.root+":")
	_, err = f.start(t, testImage, in("data.txt"))
	refused(t, "relative", err, workflows.ErrTypePolicy, "is not absolute")

	if err := os.Symlink(f.secret, filepath.Join(f.root, "key")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(f.secret), filepath.Join(f.root, "up")); err != nil {
		t.Fatal(err)
	}
	_, err = f.start(t, testImage, in(filepath.Join(f.root, "key")))
	refused(t, "symlink to a file outside", err, workflows.ErrTypePolicy, "leaves its --host-inputs root", f.secret)
	_, err = f.start(t, testImage, in(filepath.Join(f.root, "up", "worker.key")))
	refused(t, "symlinked directory outside", err, workflows.ErrTypePolicy, "leaves its --host-inputs root", f.secret)

	if err := os.Symlink("data.txt", filepath.Join(f.root, "alias")); err != nil {
		t.Fatal(err)
	}
	spec, err = f.start(t, testImage, in(filepath.Join(f.root, "alias")))
	if err != nil || spec.Inputs[0].Source != filepath.Join(f.root, "data.txt") {
		t.Fatalf("symlink inside the root: %+v %v (want the resolved path mounted)", spec.Inputs, err)
	}
	_, err = f.start(t, testImage, in(filepath.Join(f.root, "nope.txt")))
	refused(t, "missing", err, workflows.ErrTypeExecution, "does not exist")

	f.a.HostInputs = nil // a shared worker mounts no host path at all
	_, err = f.start(t, testImage, in(filepath.Join(f.root, "data.txt")))
	refused(t, "no roots", err, workflows.ErrTypePolicy, "--host-inputs")
}

// An oci-archive: image is a host path too: imported only from under the
// --host-inputs roots, for tasks and for acceptance tests.
func TestArchiveImagesStayInRoots(t *testing.T) {
	f := newInputsFixture(t)
	spec, err := f.start(t, "oci-archive:"+filepath.Join(f.root, "image.tar"))
	if err != nil || spec.Image != "oci-archive:"+filepath.Join(f.root, "image.tar") {
		t.Fatalf("archive inside the root: %q %v", spec.Image, err)
	}
	_, err = f.start(t, "oci-archive:"+f.secret)
	refused(t, "archive outside", err, workflows.ErrTypePolicy, "image: host path inputs are for operators", f.root)
	if n := f.rt.prepares.Load(); n != 1 {
		t.Errorf("prepared %d images, want only the one inside the root", n)
	}

	plan, _ := quickstartPlan(t)
	plan.Spec.Verification.Tests[0].Image = "oci-archive:" + f.secret
	raw, _ := json.Marshal(plan)
	_, err = f.a.Verify(context.Background(), workflows.VerifyInput{JobID: "job-1", PlanInput: workflows.PlanInput{PlanJSON: raw},
		Award: workflows.NegotiateOutput{Runtime: "fake"}, Tasks: map[string]workflows.TaskStatus{"train": {State: workflows.TaskSucceeded}}})
	refused(t, "test image outside", err, workflows.ErrTypePolicy, "--host-inputs")
}

// Artifact inputs and images are mounted only for the tenant that owns
// them, from where the store materialized them.
func TestArtifactInputsAreTheTenants(t *testing.T) {
	f := newInputsFixture(t)
	mine, theirs := digestOf("mine"), digestOf("theirs")
	spec, err := f.start(t, specs.ArtifactImagePrefix+mine, specs.Input{Name: "data", Artifact: mine, Target: "/in/data"})
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(f.a.inputsDir(), strings.TrimPrefix(mine, "sha256:"))
	if spec.Image != "oci-archive:"+want || spec.Inputs[0].Source != want {
		t.Errorf("image %q, input %+v; want both from %s", spec.Image, spec.Inputs, want)
	}
	if filepath.Dir(f.a.inputsDir()) != filepath.Dir(f.a.JobsDir) {
		t.Errorf("inputs materialized under %s, want beside the jobs directory", f.a.inputsDir())
	}
	_, err = f.start(t, testImage, specs.Input{Name: "data", Artifact: theirs})
	refused(t, "another tenant's artifact", err, workflows.ErrTypePolicy, "input data: artifact "+theirs+" is not yours or does not exist")
	_, err = f.start(t, specs.ArtifactImagePrefix+digestOf("nobody's"))
	refused(t, "unknown image artifact", err, workflows.ErrTypePolicy, "is not yours or does not exist")
	for _, d := range f.store.materialized {
		if d != mine {
			t.Errorf("materialized %s, which the tenant does not own", d)
		}
	}
	f.a.Inputs = nil
	_, err = f.start(t, testImage, specs.Input{Name: "data", Artifact: mine})
	refused(t, "no store", err, workflows.ErrTypeExecution, "no artifact store")
}

// A sha256 pin on a path or from input is checked before mounting.
func TestInputPinsAreEnforced(t *testing.T) {
	f := newInputsFixture(t)
	data := filepath.Join(f.root, "data.txt")
	if _, err := f.start(t, testImage, specs.Input{Name: "d", Path: data, SHA256: digestOf("data")}); err != nil {
		t.Fatalf("matching pin: %v", err)
	}
	_, err := f.start(t, testImage, specs.Input{Name: "d", Path: data, SHA256: digestOf("other")})
	refused(t, "path pin", err, workflows.ErrTypeExecution, "content is "+digestOf("data")+", but the spec pins "+digestOf("other"))

	up := f.a.OutputsDir("job-1", "prepare")
	if err := os.MkdirAll(up, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(up, "data.csv"), []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = f.start(t, testImage, specs.Input{Name: "d", From: "prepare:data.csv", SHA256: digestOf("a,b")})
	refused(t, "from pin", err, workflows.ErrTypeExecution, "but the spec pins", up)
	_, err = f.start(t, testImage, specs.Input{Name: "d", Path: f.root, SHA256: digestOf("x")})
	refused(t, "pin on a directory", err, workflows.ErrTypeExecution, "pins apply to files")
}

// A pin is hashed by streaming a regular file: a device is refused, not
// read (reading /dev/zero would never end).
func TestPinRefusesDevices(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero on this system")
	}
	if err := checkPin("/dev/zero", digestOf("")); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("pin on /dev/zero: %v", err)
	}
}

// An output the spec pins with sha256 fails the run when the task wrote
// other content; matching pins pass.
func TestOutputPinsAreEnforced(t *testing.T) {
	for _, tc := range []struct {
		content string
		ok      bool
	}{{"{}", true}, {`{"forged": 1}`, false}} {
		f := newInputsFixture(t)
		plan, _ := quickstartPlan(t)
		plan.Tasks[0].Outputs = []specs.Output{{Path: "metrics.json", SHA256: digestOf("{}")}, {Path: "model.json"}}
		raw, _ := json.Marshal(plan)
		run := workflows.RunID("job-1", "train", 1)
		done := make(chan workflows.RunTaskOutput, 1)
		errc := make(chan error, 1)
		go func() {
			out, err := f.a.RunTask(context.Background(), workflows.RunTaskInput{JobID: "job-1", Task: "train", Attempt: 1, RunID: run,
				PlanInput: workflows.PlanInput{PlanJSON: raw}, Award: workflows.NegotiateOutput{Runtime: "fake"}})
			done <- out
			errc <- err
		}()
		waitStarted(t, f.rt, run)
		f.rt.finish(run, 0, map[string]string{"metrics.json": tc.content, "model.json": "m"})
		out, err := <-done, <-errc
		if err != nil {
			t.Fatal(err)
		}
		if ok := out.State == string(runtimes.StateExited); ok != tc.ok {
			t.Errorf("output %q: state %s (%s), want ok=%v", tc.content, out.State, out.Reason, tc.ok)
		}
		if !tc.ok && !strings.Contains(out.Reason, "output metrics.json: content is "+digestOf(tc.content)+", but the spec pins "+digestOf("{}")) {
			t.Errorf("reason %q", out.Reason)
		}
	}
}

func waitStarted(t *testing.T, rt *fakeRuntime, id string) {
	t.Helper()
	for range 1000 {
		if _, err := rt.get(id); err == nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s never started", id)
}

// A metric threshold reads at most MaxMetricFile bytes of the output, and
// never a device or fifo the task left in its output directory.
func TestMetricReadIsBounded(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.json")
	pad := strings.Repeat(" ", MaxMetricFile)
	if err := os.WriteFile(big, []byte(`{"accuracy": 0.9}`+pad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readMetric(big, "accuracy"); err == nil || !strings.Contains(err.Error(), "1048576-byte limit") {
		t.Fatalf("oversized metrics file: %v", err)
	}
	small := filepath.Join(dir, "small.json")
	if err := os.WriteFile(small, []byte(`{"accuracy": 0.9}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if v, err := readMetric(small, "accuracy"); err != nil || v != 0.9 {
		t.Fatalf("metrics file: %v %v", v, err)
	}
	if _, err := os.Stat("/dev/zero"); err == nil {
		if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero.json")); err != nil {
			t.Fatal(err)
		}
		if _, err := readMetric(filepath.Join(dir, "zero.json"), "accuracy"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("metrics from /dev/zero: %v", err)
		}
	}
}
