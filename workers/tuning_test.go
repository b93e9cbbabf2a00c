package workers

import (
	"errors"
	"reflect"
	"testing"

	"github.com/spf13/pflag"
	"go.temporal.io/sdk/worker"
)

func TestDefaultTuning(t *testing.T) {
	d := DefaultTuning()
	if err := d.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	want := worker.Options{
		MaxConcurrentActivityExecutionSize:      200,
		MaxConcurrentWorkflowTaskExecutionSize:  1000,
		MaxConcurrentLocalActivityExecutionSize: 1000,
		MaxConcurrentActivityTaskPollers:        2,
		MaxConcurrentWorkflowTaskPollers:        2,
	}
	if got := d.WorkerOptions(); !reflect.DeepEqual(got, want) {
		t.Errorf("default worker options\n got %+v\nwant %+v", got, want)
	}
	if d.StickyCacheSize != 10000 {
		t.Errorf("sticky cache %d", d.StickyCacheSize)
	}
	// A zero Tuning (Options{} in tests and the stack) is the default.
	if got := (Tuning{}).withDefaults(); got != d {
		t.Errorf("zero tuning filled to %+v, want %+v", got, d)
	}
	if got := (Tuning{ActivityPollers: 8}).withDefaults(); got.ActivityPollers != 8 || got.WorkflowPollers != 2 {
		t.Errorf("partial tuning filled to %+v", got)
	}
}

// Flags beat the environment, which beats the defaults; each lands in its
// own worker option.
func TestTuningFlagsAndEnv(t *testing.T) {
	tun := DefaultTuning()
	fs := pflag.NewFlagSet("worker", pflag.ContinueOnError)
	tun.AddFlags(fs)
	err := fs.Parse([]string{"--max-concurrent-activities=50", "--workflow-pollers=6", "--sticky-cache-size=300"})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"ACCORD_WORKER_MAX_CONCURRENT_ACTIVITIES":       "999", // the flag wins
		"ACCORD_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS":   "70",
		"ACCORD_WORKER_MAX_CONCURRENT_LOCAL_ACTIVITIES": "80",
		"ACCORD_WORKER_ACTIVITY_POLLERS":                "5",
	}
	if err := tun.FromEnv(fs, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	want := worker.Options{
		MaxConcurrentActivityExecutionSize:      50,
		MaxConcurrentWorkflowTaskExecutionSize:  70,
		MaxConcurrentLocalActivityExecutionSize: 80,
		MaxConcurrentActivityTaskPollers:        5,
		MaxConcurrentWorkflowTaskPollers:        6,
	}
	if got := tun.WorkerOptions(); !reflect.DeepEqual(got, want) {
		t.Errorf("worker options\n got %+v\nwant %+v", got, want)
	}
	if tun.StickyCacheSize != 300 {
		t.Errorf("sticky cache %d, want 300", tun.StickyCacheSize)
	}
	if err := tun.Validate(); err != nil {
		t.Error(err)
	}
}

func TestTuningRejects(t *testing.T) {
	tun := DefaultTuning()
	fs := pflag.NewFlagSet("worker", pflag.ContinueOnError)
	tun.AddFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := tun.FromEnv(fs, func(string) string { return "many" }); !errors.Is(err, ErrConfig) {
		t.Errorf("non-integer env: %v", err)
	}
	// Temporal panics on a single workflow poller; refuse it up front.
	bad := DefaultTuning()
	bad.WorkflowPollers = 1
	if err := bad.Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("1 workflow poller: %v", err)
	}
	bad = DefaultTuning()
	bad.MaxConcurrentActivities = -3
	if err := bad.Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("negative activities: %v", err)
	}
}
