// Package queue is the market's clearing queue: the batch-mode jobs
// (negotiation.mode: batch) waiting for the periodic clearing, and why the
// last clearing left each unplaced.
//
// The queue is a directory under the control plane's home, one JSON file
// per job named by its job ID. It lives there, not in the ledger's
// database, because what an entry names lives there too: the job's
// compiled plan is in the home's artifact store (the entry carries its
// digest), so a clearing can only run where that store is; and the queue
// holds no money, so it needs none of the ledger's transactions. Every
// operation is idempotent by job ID: Put writes the whole entry (the same
// entry twice is one entry), Remove of an absent job succeeds, Note
// changes only an entry that is still there.
//
// Entries come back from disk as untrusted input: each file is read with
// a bound, must be named by a valid job ID, must decode to an entry of the
// same ID, and a listing reads at most MaxScan files.
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/accordmesh/accord/internal/atomicfile"
	"github.com/accordmesh/accord/internal/bounded"
)

// Errors; each wraps one of them.
var (
	ErrInvalid   = errors.New("queue: invalid entry")
	ErrNotQueued = errors.New("queue: job not queued")
)

// Bounds of the queue's files.
const (
	// MaxEntry bounds one entry's file, in bytes.
	MaxEntry = 64 << 10
	// MaxReason bounds a note's reason, in bytes (longer is cut).
	MaxReason = 8 << 10
	// MaxScan bounds how many files one listing reads.
	MaxScan = 100000
)

// JobIDPattern matches a queued job's ID, which names its file: letters,
// digits, '.', '_' or '-', at most 128, starting with a letter or digit
// (jobclient.NewJobID's IDs and the API's).
var JobIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

var refPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// Entry is one queued job.
type Entry struct {
	JobID  string `json:"job_id"`
	Tenant string `json:"tenant,omitempty"`
	// PlanRef is the digest of the job's compiled plan in the artifact
	// store.
	PlanRef string `json:"plan_ref"`
	// Enqueued is when the job asked to be cleared and Deadline when it
	// stops waiting (workflow time: the same on every retry).
	Enqueued time.Time `json:"enqueued"`
	Deadline time.Time `json:"deadline"`
	// Noted is when a clearing last left the job unplaced, and Reason why
	// (the market's diagnostics).
	Noted  time.Time `json:"noted,omitzero"`
	Reason string    `json:"reason,omitempty"`
	// Notes counts the changes of Reason the job was told of (Note).
	Notes int `json:"notes,omitempty"`
}

// Validate checks an entry's fields.
func (e Entry) Validate() error {
	switch {
	case !JobIDPattern.MatchString(e.JobID):
		return fmt.Errorf("%w: job ID %q", ErrInvalid, e.JobID)
	case !refPattern.MatchString(e.PlanRef):
		return fmt.Errorf("%w: job %s: plan ref %q is not sha256:<64 hex>", ErrInvalid, e.JobID, e.PlanRef)
	case e.Enqueued.IsZero() || e.Deadline.Before(e.Enqueued):
		return fmt.Errorf("%w: job %s: deadline %s before enqueued %s", ErrInvalid, e.JobID, e.Deadline, e.Enqueued)
	case len(e.Reason) > MaxReason || len(e.Tenant) > 63:
		return fmt.Errorf("%w: job %s: reason or tenant too long", ErrInvalid, e.JobID)
	}
	return nil
}

// Queue is a clearing queue in a directory.
type Queue struct {
	dir string
	mu  sync.Mutex // orders Note against Remove within this process
}

// Open returns the queue in dir, creating the directory.
func Open(dir string) (*Queue, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("queue: open %s: %w", dir, err)
	}
	return &Queue{dir: dir}, nil
}

// DefaultDir is the queue's directory under Accord's home.
func DefaultDir(home string) string { return filepath.Join(home, "clearing", "queue") }

func (q *Queue) path(jobID string) (string, error) {
	if !JobIDPattern.MatchString(jobID) {
		return "", fmt.Errorf("%w: job ID %q", ErrInvalid, jobID)
	}
	return filepath.Join(q.dir, jobID+".json"), nil
}

// Put queues e, replacing an entry of the same job: idempotent.
func (q *Queue) Put(_ context.Context, e Entry) error {
	if err := e.Validate(); err != nil {
		return err
	}
	p, _ := q.path(e.JobID)
	raw, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("queue: put %s: %w", e.JobID, err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := atomicfile.WriteFile(p, raw, 0o600); err != nil {
		return fmt.Errorf("queue: put %s: %w", e.JobID, err)
	}
	return nil
}

// Get reads one job's entry; ErrNotQueued when it is not queued.
func (q *Queue) Get(_ context.Context, jobID string) (Entry, error) {
	p, err := q.path(jobID)
	if err != nil {
		return Entry{}, err
	}
	return read(p, jobID)
}

func read(path, jobID string) (Entry, error) {
	raw, err := bounded.ReadFile(path, MaxEntry)
	if errors.Is(err, fs.ErrNotExist) {
		return Entry{}, fmt.Errorf("%w: %s", ErrNotQueued, jobID)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("queue: read %s: %w", jobID, err)
	}
	var e Entry
	if err := json.Unmarshal(raw, &e); err != nil {
		return Entry{}, fmt.Errorf("%w: %s: %v", ErrInvalid, jobID, err)
	}
	if e.JobID != jobID {
		return Entry{}, fmt.Errorf("%w: file of %s holds job %q", ErrInvalid, jobID, e.JobID)
	}
	if err := e.Validate(); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// Remove takes jobID off the queue and returns its entry as it was (the
// zero entry when it was not queued: removing twice is harmless).
func (q *Queue) Remove(ctx context.Context, jobID string) (Entry, error) {
	p, err := q.path(jobID)
	if err != nil {
		return Entry{}, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	e, err := read(p, jobID)
	if errors.Is(err, ErrNotQueued) {
		return Entry{}, nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Entry{}, fmt.Errorf("queue: remove %s: %w", jobID, err)
	}
	return e, nil // an unreadable entry is removed all the same
}

// Note records why a clearing at time at left jobID unplaced. A job no
// longer queued is left alone (not queued again). notify reports that the
// reason changed and fewer than maxNotes changes were reported before:
// the job should be told (and this one is counted).
func (q *Queue) Note(_ context.Context, jobID string, at time.Time, reason string, maxNotes int) (notify bool, err error) {
	p, err := q.path(jobID)
	if err != nil {
		return false, err
	}
	if len(reason) > MaxReason {
		reason = reason[:MaxReason-3] + "..."
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	e, err := read(p, jobID)
	if errors.Is(err, ErrNotQueued) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	reason = strings.ToValidUTF8(reason, "?")
	if notify = reason != e.Reason && e.Notes < maxNotes; notify {
		e.Notes++
	}
	e.Noted, e.Reason = at, reason
	raw, err := json.Marshal(e)
	if err != nil {
		return false, fmt.Errorf("queue: note %s: %w", jobID, err)
	}
	if err := atomicfile.WriteFile(p, raw, 0o600); err != nil {
		return false, fmt.Errorf("queue: note %s: %w", jobID, err)
	}
	return notify, nil
}

// List returns up to max entries, oldest first (by Enqueued, then job
// ID). A file that is not a valid entry is skipped and counted in bad.
func (q *Queue) List(_ context.Context, max int) (entries []Entry, bad int, err error) {
	d, err := os.Open(q.dir)
	if err != nil {
		return nil, 0, fmt.Errorf("queue: list: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(MaxScan)
	if err != nil && len(names) == 0 && !errors.Is(err, io.EOF) {
		return nil, 0, fmt.Errorf("queue: list: %w", err)
	}
	for _, n := range names {
		id, ok := strings.CutSuffix(n, ".json")
		if !ok || !JobIDPattern.MatchString(id) {
			continue // temporary files of a write in progress, strays
		}
		e, err := read(filepath.Join(q.dir, n), id)
		if err != nil {
			bad++
			continue
		}
		entries = append(entries, e)
	}
	sort.Slice(entries, func(i, j int) bool {
		if !entries[i].Enqueued.Equal(entries[j].Enqueued) {
			return entries[i].Enqueued.Before(entries[j].Enqueued)
		}
		return entries[i].JobID < entries[j].JobID
	})
	if max > 0 && len(entries) > max {
		entries = entries[:max]
	}
	return entries, bad, nil
}
