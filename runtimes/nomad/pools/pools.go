// Package pools keeps the compute pools an operator has attached to Accord —
// today Nomad clusters — in one small JSON file under Accord's home
// (pools.json, mode 0600 because it holds ACL tokens), and tracks which
// tasks run on each pool so that a pool is not detached from under them.
//
// Every write takes an exclusive flock on pools.json.lock, re-reads the
// file, applies one change and replaces the file atomically (temp file,
// fsync, rename), so concurrent accord processes and workers never lose an
// update. Every mutation is idempotent: attaching the same configuration
// twice, recording the same task start or finish twice, or detaching a pool
// that is gone are no-ops, so Temporal activities may retry them.
package pools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"syscall"
	"time"

	"github.com/accordmesh/accord/internal/atomicfile"
	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/runtimes/nomad"
)

// Sentinel errors.
var (
	ErrNotFound = errors.New("pools: no such pool")
	ErrExists   = errors.New("pools: a different pool with this name is attached")
	ErrBusy     = errors.New("pools: tasks are running on the pool")
	ErrInvalid  = errors.New("pools: invalid pool")
	ErrDraining = errors.New("pools: pool is draining")
)

// KindNomad is the only pool kind so far.
const KindNomad = "nomad"

// FileName is the store's file under Accord's home.
const FileName = "pools.json"

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// Pool is one attached pool.
type Pool struct {
	Name        string               `json:"name"`
	Kind        string               `json:"kind"`
	Options     map[string]string    `json:"options"` // runtime options (see nomad.ConfigFromOptions)
	PricingFile string               `json:"pricing_file,omitempty"`
	Pricing     *Pricing             `json:"pricing,omitempty"`
	AttachedAt  time.Time            `json:"attached_at"`
	Draining    bool                 `json:"draining,omitempty"`
	Running     map[string]time.Time `json:"running,omitempty"` // task ID → when it was recorded
}

// NomadConfig is the pool's Nomad configuration.
func (p Pool) NomadConfig() (nomad.Config, error) {
	opts := map[string]string{"pool": p.Name}
	for k, v := range p.Options {
		opts[k] = v
	}
	return nomad.ConfigFromOptions(opts)
}

// Runtime opens the pool's runtime.
func (p Pool) Runtime(ctx context.Context) (runtimes.Runtime, error) {
	opts := map[string]string{"pool": p.Name}
	for k, v := range p.Options {
		opts[k] = v
	}
	return runtimes.Open(ctx, p.Kind, opts)
}

// RunningTasks lists the recorded task IDs, sorted.
func (p Pool) RunningTasks() []string {
	out := make([]string, 0, len(p.Running))
	for id := range p.Running {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

type file struct {
	Version int     `json:"version"`
	Pools   []*Pool `json:"pools"`
}

// Store is the pool file under one home directory.
type Store struct {
	path string
}

// Open returns the store under home (it need not exist yet).
func Open(home string) *Store {
	return &Store{path: filepath.Join(home, FileName)}
}

// Path is the store's file.
func (s *Store) Path() string { return s.path }

// List returns the attached pools, sorted by name.
func (s *Store) List() ([]Pool, error) {
	if _, err := os.Stat(s.path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil // nothing attached; reading creates no lock file
	}
	var out []Pool
	err := s.read(func(f *file) {
		for _, p := range f.Pools {
			out = append(out, *p)
		}
	})
	return out, err
}

// Get returns one pool.
func (s *Store) Get(name string) (Pool, error) {
	var out Pool
	found := false
	err := s.read(func(f *file) {
		if p := find(f, name); p != nil {
			out, found = *p, true
		}
	})
	if err != nil {
		return Pool{}, err
	}
	if !found {
		return Pool{}, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return out, nil
}

// Add records a pool. Adding a pool with the same name, kind, options and
// pricing again is a no-op; a different one under the same name fails with
// ErrExists (detach it first).
func (s *Store) Add(p Pool) error {
	if !validName.MatchString(p.Name) {
		return fmt.Errorf("%w: name %q (lower-case letters, digits, '.', '_', '-'; at most 63)", ErrInvalid, p.Name)
	}
	if p.Kind != KindNomad {
		return fmt.Errorf("%w: kind %q (have %q)", ErrInvalid, p.Kind, KindNomad)
	}
	if p.AttachedAt.IsZero() {
		p.AttachedAt = time.Now().UTC()
	}
	return s.update(func(f *file) error {
		if old := find(f, p.Name); old != nil {
			if old.Kind == p.Kind && reflect.DeepEqual(old.Options, p.Options) && reflect.DeepEqual(old.Pricing, p.Pricing) && old.PricingFile == p.PricingFile {
				return nil
			}
			return fmt.Errorf("%w: %q", ErrExists, p.Name)
		}
		f.Pools = append(f.Pools, &p)
		sort.Slice(f.Pools, func(i, j int) bool { return f.Pools[i].Name < f.Pools[j].Name })
		return nil
	})
}

// Remove deletes a pool. With tasks recorded as running it fails with
// ErrBusy unless force is set. Removing an unknown pool is a no-op.
func (s *Store) Remove(name string, force bool) error {
	return s.update(func(f *file) error {
		for i, p := range f.Pools {
			if p.Name != name {
				continue
			}
			if len(p.Running) > 0 && !force {
				return fmt.Errorf("%w: %d on %q (%v); use --drain", ErrBusy, len(p.Running), name, p.RunningTasks())
			}
			f.Pools = append(f.Pools[:i], f.Pools[i+1:]...)
			return nil
		}
		return nil
	})
}

// SetDraining marks a pool as draining (it takes no new tasks) or not.
func (s *Store) SetDraining(name string, draining bool) error {
	return s.update(func(f *file) error {
		p := find(f, name)
		if p == nil {
			return fmt.Errorf("%w: %q", ErrNotFound, name)
		}
		p.Draining = draining
		return nil
	})
}

// TaskStarted records a task as running on a pool. Recording it again is a
// no-op; a draining pool refuses new tasks with ErrDraining.
func (s *Store) TaskStarted(pool, taskID string) error {
	return s.update(func(f *file) error {
		p := find(f, pool)
		if p == nil {
			return fmt.Errorf("%w: %q", ErrNotFound, pool)
		}
		if _, ok := p.Running[taskID]; ok {
			return nil
		}
		if p.Draining {
			return fmt.Errorf("%w: %q takes no new tasks", ErrDraining, pool)
		}
		if p.Running == nil {
			p.Running = map[string]time.Time{}
		}
		p.Running[taskID] = time.Now().UTC()
		return nil
	})
}

// TaskFinished forgets a task. Unknown pools and tasks are no-ops, so a
// retried finish after a detach succeeds.
func (s *Store) TaskFinished(pool, taskID string) error {
	return s.update(func(f *file) error {
		if p := find(f, pool); p != nil {
			delete(p.Running, taskID)
		}
		return nil
	})
}

func find(f *file, name string) *Pool {
	for _, p := range f.Pools {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// read loads the file under a shared lock.
func (s *Store) read(fn func(*file)) error {
	unlock, err := s.lock(syscall.LOCK_SH)
	if err != nil {
		return err
	}
	defer unlock()
	f, err := s.load()
	if err != nil {
		return err
	}
	fn(f)
	return nil
}

// update applies fn under an exclusive lock and writes the result atomically.
func (s *Store) update(fn func(*file) error) error {
	unlock, err := s.lock(syscall.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	f, err := s.load()
	if err != nil {
		return err
	}
	before, _ := json.Marshal(f)
	if err := fn(f); err != nil {
		return err
	}
	after, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("pools: encode: %w", err)
	}
	if compact, _ := json.Marshal(f); string(compact) == string(before) {
		if _, err := os.Stat(s.path); err == nil {
			return nil
		}
	}
	return writeAtomic(s.path, append(after, '\n'))
}

func (s *Store) load() (*file, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return &file{Version: 1}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pools: read %s: %w", s.path, err)
	}
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("pools: %s is corrupt: %w", s.path, err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("pools: %s has unknown version %d", s.path, f.Version)
	}
	return &f, nil
}

func (s *Store) lock(how int) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return nil, fmt.Errorf("pools: %w", err)
	}
	lf, err := os.OpenFile(s.path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pools: lock: %w", err)
	}
	if err := syscall.Flock(int(lf.Fd()), how); err != nil {
		lf.Close()
		return nil, fmt.Errorf("pools: lock: %w", err)
	}
	return func() {
		_ = syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
		lf.Close()
	}, nil
}

func writeAtomic(path string, b []byte) error {
	if err := atomicfile.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("pools: write: %w", err)
	}
	return nil
}
