package workers

import (
	"fmt"
	"strconv"

	"github.com/spf13/pflag"
	"go.temporal.io/sdk/worker"
)

// Tuning sizes a worker process. The concurrency limits and pollers apply
// to each task queue's worker; the sticky cache is shared by the process.
// A zero field takes DefaultTuning's value.
type Tuning struct {
	// MaxConcurrentActivities bounds activity executions in flight per
	// queue. Execution-queue activities block while a task runs (up to the
	// wait window), so this caps the tasks one worker follows at once.
	MaxConcurrentActivities int
	// MaxConcurrentWorkflowTasks bounds workflow tasks (replaying or
	// advancing a job) in flight per queue.
	MaxConcurrentWorkflowTasks int
	// MaxConcurrentLocalActivities bounds local activity executions in
	// flight per queue.
	MaxConcurrentLocalActivities int
	// ActivityPollers and WorkflowPollers are the concurrent long polls per
	// queue; Temporal needs at least 2 workflow pollers (one for the sticky
	// queue).
	ActivityPollers, WorkflowPollers int
	// StickyCacheSize is how many workflows the process keeps in memory
	// between workflow tasks, so that the next task needs no replay.
	StickyCacheSize int
}

// DefaultTuning is Accord's default sizing: 200 concurrent activities per
// queue (each execution-queue activity holds a task for up to the wait
// window), and the Temporal SDK's own defaults for the rest: 1,000
// concurrent workflow tasks and local activities, 2 activity and 2
// workflow pollers per queue, a sticky cache of 10,000 workflows.
func DefaultTuning() Tuning {
	return Tuning{
		MaxConcurrentActivities:      200,
		MaxConcurrentWorkflowTasks:   1000,
		MaxConcurrentLocalActivities: 1000,
		ActivityPollers:              2,
		WorkflowPollers:              2,
		StickyCacheSize:              10000,
	}
}

// withDefaults fills zero fields from DefaultTuning.
func (t Tuning) withDefaults() Tuning {
	d := DefaultTuning()
	for i, k := range t.knobs() {
		if *k.value == 0 {
			*k.value = *d.knobs()[i].value
		}
	}
	return t
}

// Validate reports a tuning Temporal would refuse or that cannot run.
func (t Tuning) Validate() error {
	for _, k := range t.knobs() {
		if *k.value < k.min {
			return fmt.Errorf("%w: --%s is %d, want at least %d", ErrConfig, k.flag, *k.value, k.min)
		}
	}
	return nil
}

// WorkerOptions are the Temporal worker options for one queue's worker.
// The sticky cache size is process-wide: Start sets it with
// worker.SetStickyWorkflowCacheSize before any worker starts.
func (t Tuning) WorkerOptions() worker.Options {
	return worker.Options{
		MaxConcurrentActivityExecutionSize:      t.MaxConcurrentActivities,
		MaxConcurrentWorkflowTaskExecutionSize:  t.MaxConcurrentWorkflowTasks,
		MaxConcurrentLocalActivityExecutionSize: t.MaxConcurrentLocalActivities,
		MaxConcurrentActivityTaskPollers:        t.ActivityPollers,
		MaxConcurrentWorkflowTaskPollers:        t.WorkflowPollers,
		// Let a graceful stop finish short activities; long waits return
		// to Temporal and resume on the next worker anyway.
		WorkerStopTimeout: 0,
	}
}

// EnvPrefix prefixes the environment variables that set a tuning, e.g.
// ACCORD_WORKER_MAX_CONCURRENT_ACTIVITIES.
const EnvPrefix = "ACCORD_WORKER_"

// knob is one tuning field with its flag, environment variable and floor.
type knob struct {
	flag, env, help string
	min             int
	value           *int
}

func (t *Tuning) knobs() []knob {
	return []knob{
		{"max-concurrent-activities", "MAX_CONCURRENT_ACTIVITIES", "activity executions in flight per task queue", 1, &t.MaxConcurrentActivities},
		{"max-concurrent-workflow-tasks", "MAX_CONCURRENT_WORKFLOW_TASKS", "workflow tasks in flight per task queue", 1, &t.MaxConcurrentWorkflowTasks},
		{"max-concurrent-local-activities", "MAX_CONCURRENT_LOCAL_ACTIVITIES", "local activity executions in flight per task queue", 1, &t.MaxConcurrentLocalActivities},
		{"activity-pollers", "ACTIVITY_POLLERS", "concurrent activity task polls per task queue", 1, &t.ActivityPollers},
		{"workflow-pollers", "WORKFLOW_POLLERS", "concurrent workflow task polls per task queue (at least 2)", 2, &t.WorkflowPollers},
		{"sticky-cache-size", "STICKY_CACHE_SIZE", "workflows the process keeps cached between workflow tasks", 1, &t.StickyCacheSize},
	}
}

// AddFlags adds a flag per field to fs, each defaulting to t's current
// value and naming its environment variable.
func (t *Tuning) AddFlags(fs *pflag.FlagSet) {
	for _, k := range t.knobs() {
		fs.IntVar(k.value, k.flag, *k.value, fmt.Sprintf("%s ($%s%s)", k.help, EnvPrefix, k.env))
	}
}

// FromEnv sets, after fs is parsed, each field whose flag was not given
// from its environment variable (EnvPrefix + name) when that is set: a
// flag beats the environment, which beats the default. getenv is usually
// os.Getenv.
func (t *Tuning) FromEnv(fs *pflag.FlagSet, getenv func(string) string) error {
	for _, k := range t.knobs() {
		if fs.Changed(k.flag) {
			continue
		}
		s := getenv(EnvPrefix + k.env)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%w: $%s%s=%q is not an integer", ErrConfig, EnvPrefix, k.env, s)
		}
		*k.value = n
	}
	return nil
}
