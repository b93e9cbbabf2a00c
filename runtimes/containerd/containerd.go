// Package containerd runs Accord tasks as containers on one machine through
// a containerd daemon: an existing one (Options.Address) or a private one
// that Accord starts under its state directory (StartDaemon).
//
// Each Accord instance works in its own containerd namespace. A task is one
// container whose ID is the task ID, which makes every operation idempotent:
// Start on an existing ID re-attaches to the container instead of creating a
// second one, and the task's terminal status is derived from containerd's
// own record (exit status, labels set before a kill, the cgroup's OOM
// counter) and then written once to status.json in the task's directory
// under Options.StateDir, before the containerd task is deleted. Any process
// with the same options can therefore pick up a task that another, crashed
// process started.
//
// Max duration is enforced by whoever observes the task (Wait, Status): the
// deadline is stored on the container, so a re-attached worker enforces the
// same one. Stdout and stderr go to a log file written by containerd's shim,
// so they survive the client too.
package containerd

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"

	"github.com/accordmesh/accord/internal/atomicfile"
	"github.com/accordmesh/accord/runtimes"
)

// ErrNoDaemon: no containerd could be reached or started.
var ErrNoDaemon = fmt.Errorf("containerd: no daemon: %w", runtimes.ErrUnavailable)

// Defaults filled in by New.
const (
	DefaultSnapshotter = "overlayfs"
	DefaultPids        = 1024
	DefaultOutputDir   = "/out"
	// stopWait bounds how long Stop and Cleanup wait for a SIGKILLed task to exit.
	stopWait = 10 * time.Second
)

// Container labels that carry what a re-attaching worker needs.
const (
	labelTask        = "accord.task"         // marks containers Accord created
	labelStarted     = "accord.started"      // RFC 3339 time the task was started
	labelMaxDuration = "accord.max-duration" // Go duration
	labelReason      = "accord.reason"       // "timeout" or "killed", set before a kill
)

// Options configure New.
type Options struct {
	// StateDir holds task directories (logs, outputs, status) and, for a
	// managed daemon, the daemon itself. Required.
	StateDir string
	// Address is an existing containerd socket. Empty: start (or reuse) a
	// private daemon in StateDir/daemon.
	Address string
	// Namespace defaults to "accord-" plus a hash of StateDir, unique per
	// Accord instance.
	Namespace   string
	Snapshotter string // default DefaultSnapshotter
	// Pids is the default process limit when a task gives none.
	Pids int64
	// PlainHTTP lists registry hosts (host:port) reached over plain HTTP;
	// loopback registries always are.
	PlainHTTP []string
	// CDISpecDirs, when set, replaces the directories searched for CDI
	// device specs (default /etc/cdi and /var/run/cdi).
	CDISpecDirs []string
	// UserNSBase is the host uid and gid that root in a task's user
	// namespace maps to (default DefaultUserNSBase); 65536 ids from it
	// are used.
	UserNSBase uint32
	// TmpBytes bounds /tmp (default DefaultTmpBytes); OutputBytes bounds
	// the output directory of a task that sets no Resources.DiskBytes
	// (default DefaultOutputBytes); LogBytes bounds task.log (default
	// DefaultLogBytes).
	TmpBytes, OutputBytes, LogBytes int64
}

// Runtime is the containerd implementation of runtimes.Runtime.
type Runtime struct {
	client *containerd.Client
	opts   Options
	daemon *Daemon // nil when using an existing socket
}

var _ runtimes.Runtime = (*Runtime)(nil)

func init() {
	runtimes.Register("containerd", open)
}

// open is the registered factory. Options: state_dir (default
// $ACCORD_HOME/containerd, else ~/.accord/containerd), address (empty: a
// managed daemon), namespace, snapshotter, pids, plain_http and
// cdi_spec_dirs (comma-separated), userns_base, tmp_bytes, output_bytes
// and log_bytes.
func open(ctx context.Context, o map[string]string) (runtimes.Runtime, error) {
	opts := Options{
		StateDir:    o["state_dir"],
		Address:     o["address"],
		Namespace:   o["namespace"],
		Snapshotter: o["snapshotter"],
	}
	ints := map[string]*int64{"pids": &opts.Pids, "tmp_bytes": &opts.TmpBytes,
		"output_bytes": &opts.OutputBytes, "log_bytes": &opts.LogBytes}
	for k, v := range o {
		switch k {
		case "state_dir", "address", "namespace", "snapshotter", "plain_http", "cdi_spec_dirs":
		case "pids", "tmp_bytes", "output_bytes", "log_bytes":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: containerd option %s: %q is not a count", runtimes.ErrInvalid, k, v)
			}
			*ints[k] = n
		case "userns_base":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n == 0 || n > math.MaxUint32-userNSSize {
				return nil, fmt.Errorf("%w: containerd option userns_base: %q is not a host uid above 0", runtimes.ErrInvalid, v)
			}
			opts.UserNSBase = uint32(n)
		default:
			return nil, fmt.Errorf("%w: unknown containerd option %q", runtimes.ErrInvalid, k)
		}
	}
	if v := o["plain_http"]; v != "" {
		opts.PlainHTTP = strings.Split(v, ",")
	}
	if v := o["cdi_spec_dirs"]; v != "" {
		opts.CDISpecDirs = strings.Split(v, ",")
	}
	if opts.StateDir == "" {
		home := os.Getenv("ACCORD_HOME")
		if home == "" {
			h, err := os.UserHomeDir()
			if err != nil {
				return nil, fmt.Errorf("containerd: no state_dir and no home directory: %w", err)
			}
			home = filepath.Join(h, ".accord")
		}
		opts.StateDir = filepath.Join(home, "containerd")
	}
	return New(ctx, opts)
}

// New connects to containerd, starting the private daemon first when no
// address is given.
func New(ctx context.Context, opts Options) (*Runtime, error) {
	if opts.StateDir == "" {
		return nil, errors.New("containerd: Options.StateDir is required")
	}
	dir, err := filepath.Abs(opts.StateDir)
	if err != nil {
		return nil, fmt.Errorf("containerd: state dir: %w", err)
	}
	opts.StateDir = dir
	if opts.Namespace == "" {
		sum := sha256.Sum256([]byte(dir))
		opts.Namespace = fmt.Sprintf("accord-%x", sum[:6])
	}
	if err := identifiers.Validate(opts.Namespace); err != nil {
		return nil, fmt.Errorf("containerd: namespace: %w", err)
	}
	if opts.Snapshotter == "" {
		opts.Snapshotter = DefaultSnapshotter
	}
	if opts.Pids == 0 {
		opts.Pids = DefaultPids
	}
	opts.UserNSBase = cmp.Or(opts.UserNSBase, DefaultUserNSBase)
	opts.TmpBytes = cmp.Or(opts.TmpBytes, DefaultTmpBytes)
	opts.OutputBytes = cmp.Or(opts.OutputBytes, DefaultOutputBytes)
	opts.LogBytes = cmp.Or(opts.LogBytes, DefaultLogBytes)
	if err := os.MkdirAll(filepath.Join(dir, "tasks"), 0o700); err != nil {
		return nil, fmt.Errorf("containerd: state dir: %w", err)
	}
	if len(opts.CDISpecDirs) > 0 {
		if err := configureCDI(opts.CDISpecDirs); err != nil {
			return nil, err
		}
	}
	r := &Runtime{opts: opts}
	if opts.Address == "" {
		d, err := StartDaemon(ctx, DaemonDir(dir))
		if err != nil {
			return nil, err
		}
		r.daemon = d
		opts.Address = d.Address
		r.opts.Address = d.Address
	}
	c, err := containerd.New(opts.Address, containerd.WithDefaultNamespace(opts.Namespace), containerd.WithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNoDaemon, opts.Address, err)
	}
	r.client = c
	return r, nil
}

// StartedDaemon returns the private daemon New started, or nil when it
// used an existing socket or found the daemon already running. A command
// that started it stops it with StopDaemon(d.Dir, grace) when done.
func (r *Runtime) StartedDaemon() *Daemon {
	if r.daemon == nil || !r.daemon.Started {
		return nil
	}
	return r.daemon
}

// Name implements runtimes.Runtime.
func (r *Runtime) Name() string { return "containerd" }

// Client returns the underlying containerd client (for inspection in tests
// and tools); its default namespace is Namespace().
func (r *Runtime) Client() *containerd.Client { return r.client }

// Namespace is the containerd namespace this runtime works in.
func (r *Runtime) Namespace() string { return r.opts.Namespace }

// Daemon returns the managed daemon, or nil when using an existing socket.
func (r *Runtime) Daemon() *Daemon { return r.daemon }

// Close closes the client connection. A managed daemon keeps running, with
// its tasks; StopDaemon ends it.
func (r *Runtime) Close() error { return r.client.Close() }

func (r *Runtime) ctx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, r.opts.Namespace)
}

func (r *Runtime) taskDir(id string) string { return filepath.Join(r.opts.StateDir, "tasks", id) }

// record is what the task directory keeps next to the log and outputs.
type record struct {
	Spec runtimes.TaskSpec `json:"spec"`
}

func (r *Runtime) readRecord(id string) (*record, error) {
	b, err := os.ReadFile(filepath.Join(r.taskDir(id), "spec.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", runtimes.ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("containerd: task %s: %w", id, err)
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("containerd: task %s: spec.json: %w", id, err)
	}
	return &rec, nil
}

func (r *Runtime) readStatus(id string) (runtimes.Status, bool) {
	b, err := os.ReadFile(filepath.Join(r.taskDir(id), "status.json"))
	if err != nil {
		return runtimes.Status{}, false
	}
	var st runtimes.Status
	if err := json.Unmarshal(b, &st); err != nil {
		slog.Warn("containerd: unreadable status.json, deriving status again", "task", id, "err", err)
		return runtimes.Status{}, false
	}
	return st, true
}

// writeStatus records a terminal status atomically; the first record wins
// so that two observers cannot disagree.
func (r *Runtime) writeStatus(st runtimes.Status) (runtimes.Status, error) {
	if prev, ok := r.readStatus(st.ID); ok {
		return prev, nil
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return st, fmt.Errorf("containerd: status: %w", err)
	}
	created, err := atomicfile.WriteNew(filepath.Join(r.taskDir(st.ID), "status.json"), b, 0o600)
	if err != nil {
		return st, fmt.Errorf("containerd: status: %w", err)
	}
	if !created { // another observer won the race; its record stands
		if prev, ok := r.readStatus(st.ID); ok {
			return prev, nil
		}
		return st, fmt.Errorf("containerd: status: %s: status.json exists but is unreadable", st.ID)
	}
	return st, nil
}

// convert maps containerd errors onto the runtimes sentinels once, here.
func convert(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errdefs.IsNotFound(err):
		return fmt.Errorf("%w: %s: %v", runtimes.ErrNotFound, what, err)
	case errdefs.IsUnavailable(err):
		return fmt.Errorf("%w: %s: %v", runtimes.ErrUnavailable, what, err)
	}
	return fmt.Errorf("containerd: %s: %w", what, err)
}
