package apijobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/accordmesh/accord/internal/apiserver"
	"github.com/accordmesh/accord/internal/bounded"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/specs"
)

// DefaultUploadRetention is how long an upload is kept after the last job
// that used it finished: long enough to read a failed job's spec back.
const DefaultUploadRetention = 24 * time.Hour

// markers is the directory, inside an upload's, with one empty file per
// job that uses the upload. Upload names never start with a dot.
const markers = ".jobs"

// ErrHome reports a Jobs without an absolute Home: uploads would land
// relative to the server's working directory.
var ErrHome = errors.New("apijobs: Home must be an absolute path")

func (a *Jobs) uploadsDir() (string, error) {
	if !filepath.IsAbs(a.Home) {
		return "", fmt.Errorf("%w, not %q", ErrHome, a.Home)
	}
	return filepath.Join(a.Home, "uploads"), nil
}

// store writes an upload and its job's marker, and returns the spec's path.
func (a *Jobs) store(jobID, name string, doc, sig []byte) (string, error) {
	uploads, err := a.uploadsDir()
	if err != nil {
		return "", err
	}
	a.uploads.Lock()
	defer a.uploads.Unlock()
	dir := filepath.Join(uploads, strings.TrimPrefix(provenance.Digest(doc), "sha256:"))
	if err := os.MkdirAll(filepath.Join(dir, markers), 0o700); err != nil {
		return "", fmt.Errorf("apijobs: store upload: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, markers, jobID), nil, 0o600); err != nil {
		return "", fmt.Errorf("apijobs: store upload: %w", err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		return "", fmt.Errorf("apijobs: store upload: %w", err)
	}
	now := time.Now()
	if err := os.Chtimes(dir, now, now); err != nil { // an upload used again is young again
		return "", fmt.Errorf("apijobs: store upload: %w", err)
	}
	if len(sig) > 0 {
		if err := os.WriteFile(path+provenance.SpecSignatureExt, sig, 0o600); err != nil {
			return "", fmt.Errorf("apijobs: store signature: %w", err)
		}
	}
	return path, nil
}

// unmark drops the marker of a job that did not start.
func (a *Jobs) unmark(path, jobID string) {
	a.uploads.Lock()
	defer a.uploads.Unlock()
	_ = os.Remove(filepath.Join(filepath.Dir(path), markers, jobID))
}

// SweepUploads removes the uploads no job needs any more: a job's marker
// goes once the job has finished more than retention ago (or is unknown
// to Temporal), and an upload goes with its last marker, once it is itself
// older than retention. It returns how many uploads it removed; an upload
// whose jobs cannot be checked is kept for the next sweep.
func (a *Jobs) SweepUploads(ctx context.Context, retention time.Duration) (int, error) {
	uploads, err := a.uploadsDir()
	if err != nil {
		return 0, err
	}
	entries, err := os.ReadDir(uploads)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("apijobs: sweep uploads: %w", err)
	}
	removed := 0
	var errs []error
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		gone, err := a.sweepUpload(ctx, filepath.Join(uploads, e.Name()), retention)
		if err != nil {
			errs = append(errs, err)
		}
		if gone {
			removed++
		}
	}
	return removed, errors.Join(errs...)
}

// sweepUpload drops the finished jobs' markers of one upload and the
// upload itself when none is left.
func (a *Jobs) sweepUpload(ctx context.Context, dir string, retention time.Duration) (bool, error) {
	jobs, err := os.ReadDir(filepath.Join(dir, markers))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("apijobs: sweep %s: %w", dir, err)
	}
	now := time.Now()
	left := 0
	for _, j := range jobs {
		closedAt, done, err := a.jobClosed(ctx, j.Name())
		if err != nil {
			return false, fmt.Errorf("apijobs: sweep %s: job %s: %w", dir, j.Name(), err)
		}
		if info, err := j.Info(); done && closedAt.IsZero() && err == nil {
			closedAt = info.ModTime() // never started, or forgotten: as old as its marker
		}
		if !done || now.Sub(closedAt) < retention {
			left++
			continue
		}
		a.unmark(filepath.Join(dir, "spec"), j.Name())
	}
	info, err := os.Stat(dir)
	if err != nil || left > 0 || now.Sub(info.ModTime()) < retention {
		return false, nil
	}
	a.uploads.Lock()
	defer a.uploads.Unlock()
	if rest, _ := os.ReadDir(filepath.Join(dir, markers)); len(rest) > 0 {
		return false, nil // a job was submitted meanwhile
	}
	if err := os.RemoveAll(dir); err != nil {
		return false, fmt.Errorf("apijobs: sweep %s: %w", dir, err)
	}
	return true, nil
}

// jobClosed reports whether a job has finished and when; a job Temporal
// does not know (never started, or past its retention) is finished at an
// unknown (zero) time.
func (a *Jobs) jobClosed(ctx context.Context, jobID string) (time.Time, bool, error) {
	if a.closed != nil {
		return a.closed(ctx, jobID)
	}
	desc, err := a.Client.DescribeWorkflowExecution(ctx, jobID, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return time.Time{}, true, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	ct := desc.GetWorkflowExecutionInfo().GetCloseTime()
	if ct == nil {
		return time.Time{}, false, nil
	}
	return ct.AsTime(), true, nil
}

// SpecDocument returns the spec document a job was submitted with, read
// from its upload (the one whose markers name the job) under Home.
func (a *Jobs) SpecDocument(_ context.Context, jobID string) (string, []byte, error) {
	uploads, err := a.uploadsDir()
	if err != nil {
		return "", nil, err
	}
	if jobID == "" || strings.ContainsAny(jobID, `/\`) || strings.HasPrefix(jobID, ".") {
		return "", nil, apiserver.ErrNotFound
	}
	markersOf, err := filepath.Glob(filepath.Join(uploads, "*", markers, jobID))
	if err != nil || len(markersOf) == 0 {
		return "", nil, apiserver.ErrNotFound // a job not submitted through the API, or swept
	}
	dir := filepath.Dir(filepath.Dir(markersOf[0]))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", nil, fmt.Errorf("apijobs: spec of %s: %w", jobID, err)
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(name, ".") || strings.HasSuffix(name, provenance.SpecSignatureExt) {
			continue
		}
		doc, err := bounded.ReadFile(filepath.Join(dir, name), specs.MaxFileSize)
		if err != nil {
			return "", nil, fmt.Errorf("apijobs: spec of %s: %w", jobID, err)
		}
		return name, doc, nil
	}
	return "", nil, apiserver.ErrNotFound
}
