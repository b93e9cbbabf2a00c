package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/accordmesh/accord/internal/bounded"
	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/specs"
	"github.com/accordmesh/accord/workflows"
)

// Verify runs the spec's acceptance tests against the collected outputs: a
// test command in a container (the task's image unless the test names one)
// with the task's outputs mounted read-only at /out, expected output
// digests, and metric thresholds read from JSON outputs. Idempotent: test
// containers are named <job>.verify.<n>, so a retry re-attaches to a test
// still running, and the checks are pure functions of the outputs.
func (a *Activities) Verify(ctx context.Context, in workflows.VerifyInput) (workflows.VerifyOutput, error) {
	plan, err := a.plan(ctx, in.PlanInput)
	if err != nil {
		return workflows.VerifyOutput{}, err
	}
	if len(in.Results) > 0 {
		if in.Tasks, err = a.results(ctx, in.Results); err != nil {
			return workflows.VerifyOutput{}, err
		}
	}
	out := workflows.VerifyOutput{Passed: true}
	for i, t := range plan.Spec.Verification.Tests {
		res, err := a.runTest(ctx, in, plan, i, t)
		if err != nil {
			return workflows.VerifyOutput{}, err
		}
		out.Passed = out.Passed && res.Passed
		out.Tests = append(out.Tests, res)
	}
	a.logger(ctx, in.JobID).Info("verified", "passed", out.Passed, "tests", len(out.Tests))
	return out, nil
}

func (a *Activities) runTest(ctx context.Context, in workflows.VerifyInput, plan *specs.Plan, n int, t specs.Test) (workflows.TestResult, error) {
	res := workflows.TestResult{Name: t.Name, Passed: true}
	var details []string
	failf := func(format string, args ...any) {
		res.Passed = false
		details = append(details, truncate(fmt.Sprintf(format, args...), MaxTestDetail/4))
	}
	status, ok := in.Tasks[t.Task]
	if !ok || status.State != workflows.TaskSucceeded {
		failf("task %s did not succeed", t.Task)
		res.Detail = strings.Join(details, "; ")
		return res, nil
	}
	dir := a.OutputsDir(in.JobID, t.Task)
	if err := a.localOutputs(ctx, in.JobID, t.Task, status.Outputs); err != nil {
		return res, err
	}
	for path, want := range t.ExpectOutputs {
		got, err := fileDigest(filepath.Join(dir, filepath.FromSlash(path)))
		if err != nil {
			failf("output %s: %v", path, err)
		} else if strings.TrimPrefix(want, "sha256:") != got {
			failf("output %s: sha256 %s, want %s", path, got, want)
		}
	}
	for _, th := range t.Metrics {
		v, err := readMetric(filepath.Join(dir, filepath.FromSlash(th.File)), th.Metric)
		if err != nil {
			failf("metric %s in %s: %v", th.Metric, th.File, err)
			continue
		}
		if !compare(v, th.Op, th.Value) {
			failf("metric %s = %g, want %s %g", th.Metric, v, th.Op, th.Value)
		}
	}
	if len(t.Command) > 0 {
		code, reason, err := a.runTestContainer(ctx, in, plan, n, t, dir)
		if err != nil {
			return res, err
		}
		if code != t.ExpectExit {
			failf("command exited %d (%s), want %d", code, reason, t.ExpectExit)
		}
	}
	res.Detail = truncate(strings.Join(details, "; "), MaxTestDetail)
	return res, nil
}

// MaxTestDetail bounds a test result's detail, which goes into the
// verification attestation and the receipt: parts of it (a metric's
// value) are the tenant's outputs.
const MaxTestDetail = 2048

// truncate cuts s to at most max bytes, on a rune boundary, marking the cut.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func (a *Activities) runTestContainer(ctx context.Context, in workflows.VerifyInput, plan *specs.Plan, n int, t specs.Test, outputs string) (int, string, error) {
	rt, err := a.verifyRuntime(ctx, in.Award.Runtime)
	if err != nil {
		return 0, "", err
	}
	image := t.Image
	if image == "" {
		if task, ok := findTask(plan, t.Task); ok {
			image = task.Image
		}
	}
	id := testRunID(in.JobID, n)
	stop := heartbeat(ctx, "verifying "+t.Name)
	defer stop()
	image, err = a.resolveImage(ctx, plan.Tenant, image)
	if err != nil {
		return 0, "", err
	}
	if _, _, err := a.prepare(ctx, rt, image); err != nil {
		return 0, "", runtimeErr(ctx, "prepare verifier "+image, err)
	}
	if err := os.MkdirAll(outputs, 0o755); err != nil {
		return 0, "", fmt.Errorf("verify: %w", err)
	}
	spec := runtimes.TaskSpec{
		ID: id, Image: image, Command: t.Command, OutputDir: "/verify",
		Inputs:    []runtimes.Mount{{Source: outputs, Target: "/out"}},
		Resources: runtimes.Resources{MilliCPU: 1000, MemoryBytes: 256 << 20, MaxDuration: a.testDuration()},
		Labels:    map[string]string{"accord.job": in.JobID, "accord.test": t.Name},
	}
	if _, err := rt.Start(ctx, spec); err != nil {
		return 0, "", runtimeErr(ctx, "start verifier", err)
	}
	st, err := rt.Wait(ctx, id)
	if err != nil {
		return 0, "", runtimeErr(ctx, "wait verifier", err)
	}
	a.saveLog(ctx, rt, in.JobID, id)
	if err := rt.Cleanup(ctx, id); err != nil {
		a.logger(ctx, in.JobID).Warn("verifier cleanup failed", "id", id, "error", err)
	}
	if st.State != runtimes.StateExited {
		return -1, fmt.Sprintf("%s: %s", st.State, st.Reason), nil
	}
	return st.ExitCode, "exited", nil
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// MaxMetricFile bounds the JSON output a metric threshold reads: the file
// is the tenant's (or the provider's) to write, and a metrics file is small.
const MaxMetricFile = 1 << 20

// readMetric reads the number at a dotted path in a JSON file of at most
// MaxMetricFile bytes; a larger file, or one that is not a regular file,
// is refused unread.
func readMetric(path, metric string) (float64, error) {
	b, err := bounded.ReadFile(path, MaxMetricFile)
	if errors.Is(err, bounded.ErrTooLarge) {
		return 0, fmt.Errorf("larger than the %d-byte limit for metric files", MaxMetricFile)
	}
	if err != nil {
		return 0, errors.Unwrap(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return 0, fmt.Errorf("not JSON: %w", err)
	}
	for _, k := range strings.Split(metric, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return 0, fmt.Errorf("%q is not an object", k)
		}
		if v, ok = m[k]; !ok {
			return 0, fmt.Errorf("no key %q", k)
		}
	}
	f, ok := v.(float64)
	if !ok || math.IsNaN(f) {
		return 0, fmt.Errorf("not a number: %v", v)
	}
	return f, nil
}

func compare(v float64, op string, bound float64) bool {
	switch op {
	case "<":
		return v < bound
	case "<=":
		return v <= bound
	case ">":
		return v > bound
	case ">=":
		return v >= bound
	case "==":
		return v == bound
	case "!=":
		return v != bound
	}
	return false
}

// DefaultTestDuration bounds one acceptance-test container: a test that runs
// longer is killed and fails, so a tenant's test cannot hold a provider's
// machine unpaid.
const DefaultTestDuration = 10 * time.Minute

func (a *Activities) testDuration() time.Duration {
	if a.TestDuration > 0 {
		return a.TestDuration
	}
	return DefaultTestDuration
}

// testRunID names acceptance test n's container: <job>.verify.<n>.
func testRunID(jobID string, n int) string { return fmt.Sprintf("%s.verify.%d", jobID, n) }

// verifyRuntime is where acceptance tests run: the worker's own runtime
// when it has one, else the award's.
func (a *Activities) verifyRuntime(ctx context.Context, award string) (runtimes.Runtime, error) {
	kind := a.VerifyRuntime
	if kind == "" {
		kind = award
	}
	return a.runtime(ctx, kind)
}

// StopTests stops and removes a job's acceptance-test containers: the
// compensation for Verify. Idempotent: a container that is gone is skipped.
func (a *Activities) StopTests(ctx context.Context, in workflows.StopTestsInput) (workflows.StopTestsOutput, error) {
	rt, err := a.verifyRuntime(ctx, in.Runtime)
	if err != nil {
		return workflows.StopTestsOutput{}, err
	}
	for n := range in.Tests {
		id := testRunID(in.JobID, n)
		if err := rt.Stop(ctx, id, stopGrace); errors.Is(err, runtimes.ErrNotFound) {
			continue
		} else if err != nil {
			return workflows.StopTestsOutput{}, runtimeErr(ctx, "stop "+id, err)
		}
		a.saveLog(ctx, rt, in.JobID, id)
		if err := rt.Cleanup(ctx, id); err != nil {
			return workflows.StopTestsOutput{}, runtimeErr(ctx, "cleanup "+id, err)
		}
		a.logger(ctx, in.JobID).Info("test stopped", "id", id)
	}
	return workflows.StopTestsOutput{}, nil
}
