// Package runtimes defines the one interface through which Accord runs a
// task: prepare its image, start it under a caller-chosen ID, observe it,
// wait for it, stop it, collect its outputs and clean up.
//
// Every method is idempotent by task ID so that a Temporal activity retried
// after a worker crash re-attaches to the container it already started
// instead of starting a second one. Implementations live in sub-packages
// (runtimes/containerd, runtimes/nomad) and register themselves by name.
package runtimes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"
)

// Sentinel errors shared by every runtime. Implementations wrap them with %w.
var (
	// ErrNotFound: no task exists under the given ID.
	ErrNotFound = errors.New("runtimes: task not found")
	// ErrImage: the image could not be resolved, pulled or unpacked.
	ErrImage = errors.New("runtimes: image unavailable")
	// ErrInvalid: the task description is unusable (permanent).
	ErrInvalid = errors.New("runtimes: invalid task")
	// ErrUnavailable: the backing daemon or cluster cannot be reached (retryable).
	ErrUnavailable = errors.New("runtimes: backend unavailable")
	// ErrNotDone: the task has not finished yet (Collect before the end; retryable).
	ErrNotDone = errors.New("runtimes: task has not finished")
	// ErrOutput: a declared output is missing or unreadable (permanent for that run).
	ErrOutput = errors.New("runtimes: output missing or unreadable")
)

// TaskSpec is what a runtime needs to run one task. Quantities are already
// normalised: millicores, bytes, a whole duration.
type TaskSpec struct {
	ID         string            // caller-chosen, unique per Accord instance; the idempotency key
	Image      string            // OCI reference with digest, or "oci-archive:PATH"
	Command    []string          // entrypoint and args; empty means the image default
	Env        map[string]string // environment
	WorkingDir string
	Inputs     []Mount // read-only inputs
	OutputDir  string  // path inside the container whose files are collected
	Outputs    []string
	Resources  Resources
	Labels     map[string]string
	// NetNS, when set, is the path of an existing network namespace the
	// task joins (a service replica's CNI namespace, made by the worker,
	// never by a tenant); empty gives the task a namespace of its own with
	// loopback only.
	NetNS string
}

// Mount is a read-only host path made visible inside the task.
type Mount struct {
	Source string // host path
	Target string // path inside the container
}

// Resources is the envelope a task runs in.
type Resources struct {
	MilliCPU    int64         // 1000 = one core
	MemoryBytes int64         // hard limit
	DiskBytes   int64         // scratch space, where the runtime can enforce it
	Pids        int64         // process limit; 0 means the runtime's default
	GPUs        int           // count
	GPUModel    string        // e.g. "H100"; empty means any
	GPUMemBytes int64         // minimum memory per GPU
	GPUDevices  []string      // exact devices granted at placement, e.g. CDI names or Nomad instance IDs
	MaxDuration time.Duration // killed and reported as timed out after this
}

// State is a task's lifecycle state.
type State string

const (
	StatePending  State = "pending"
	StateRunning  State = "running"
	StateExited   State = "exited"  // ran to completion, see ExitCode
	StateOOM      State = "oom"     // killed for exceeding its memory limit
	StateTimedOut State = "timeout" // killed for exceeding MaxDuration
	StateKilled   State = "killed"  // stopped by Stop (cancellation)
	StateFailed   State = "failed"  // the runtime could not run it (lost node, placement failure)
	StateUnknown  State = "unknown"
)

// Terminal reports whether no further transition can happen.
func (s State) Terminal() bool {
	switch s {
	case StateExited, StateOOM, StateTimedOut, StateKilled, StateFailed:
		return true
	}
	return false
}

// Status is a snapshot of a task.
type Status struct {
	ID         string
	State      State
	ExitCode   int
	Reason     string // human-readable cause for non-zero or non-exited states
	StartedAt  time.Time
	FinishedAt time.Time
	Node       string // where it runs (host, Nomad node ID)
	Usage      Usage
}

// Usage is what the task consumed, for metering.
type Usage struct {
	WallSeconds  float64 `json:"wall_seconds"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	PeakMemBytes int64   `json:"peak_mem_bytes,omitempty"`
	MemGBSeconds float64 `json:"mem_gb_seconds,omitempty"`
	GPUSeconds   float64 `json:"gpu_seconds,omitempty"`
}

// Add is the usage of two runs together: quantities add up, the peak
// memory is the larger peak.
func (u Usage) Add(v Usage) Usage {
	u.WallSeconds += v.WallSeconds
	u.CPUSeconds += v.CPUSeconds
	u.MemGBSeconds += v.MemGBSeconds
	u.GPUSeconds += v.GPUSeconds
	u.PeakMemBytes = max(u.PeakMemBytes, v.PeakMemBytes)
	return u
}

// Output is one collected output file.
type Output struct {
	Path   string // relative to the output directory
	Size   int64
	SHA256 string // lower-case hex
	Local  string // where the collected copy lives on the worker's host
}

// Runtime runs tasks. Implementations must make every method safe to call
// again with the same ID after a crash.
type Runtime interface {
	// Name is the registered kind, e.g. "containerd" or "nomad".
	Name() string
	// Prepare makes the image available locally (import, pull, unpack) and
	// returns its resolved digest.
	Prepare(ctx context.Context, image string) (digest string, err error)
	// Start starts the task, or re-attaches when a task with spec.ID exists.
	// It returns once the task is running or already terminal.
	Start(ctx context.Context, spec TaskSpec) (Status, error)
	// Status returns the current state without blocking.
	Status(ctx context.Context, id string) (Status, error)
	// Wait blocks until the task is terminal or ctx ends.
	Wait(ctx context.Context, id string) (Status, error)
	// Logs streams the task's combined stdout/stderr; with follow it keeps
	// streaming until the task ends or ctx is cancelled.
	Logs(ctx context.Context, id string, follow bool) (io.ReadCloser, error)
	// Stop asks the task to stop, kills it after grace, and records it as killed.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// Collect copies the task's outputs to dir and digests them.
	Collect(ctx context.Context, id string, dir string) ([]Output, error)
	// Cleanup removes every trace of the task (container, snapshot, mounts,
	// job). Cleaning up an unknown ID is not an error.
	Cleanup(ctx context.Context, id string) error
}

// Factory opens a runtime from string options (from flags or a pool config).
type Factory func(ctx context.Context, opts map[string]string) (Runtime, error)

var (
	mu        sync.Mutex
	factories = map[string]Factory{}
)

// Register makes a runtime kind available by name. It panics on duplicates:
// registration happens in init functions and a clash is a programming error.
func Register(kind string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := factories[kind]; dup {
		panic("runtimes: duplicate registration of " + kind)
	}
	factories[kind] = f
}

// Open opens a registered runtime kind.
func Open(ctx context.Context, kind string, opts map[string]string) (Runtime, error) {
	mu.Lock()
	f, ok := factories[kind]
	mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("runtimes: unknown kind %q (have %v)", kind, Kinds())
	}
	return f(ctx, opts)
}

// Kinds lists registered runtime kinds, sorted.
func Kinds() []string {
	mu.Lock()
	defer mu.Unlock()
	var out []string
	for k := range factories {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
