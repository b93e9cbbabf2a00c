package containerd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/accordmesh/accord/runtimes"
)

// logPoll is how often a following log reader checks for more output.
const logPoll = 100 * time.Millisecond

// Logs implements runtimes.Runtime. The log file is written by
// containerd's shim; with follow, the reader keeps reading until the task
// is terminal and everything it wrote has been read, or ctx ends.
func (r *Runtime) Logs(ctx context.Context, id string, follow bool) (io.ReadCloser, error) {
	if _, err := r.readRecord(id); err != nil {
		return nil, err
	}
	p := filepath.Join(r.taskDir(id), "task.log")
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		if !follow {
			return io.NopCloser(strings.NewReader("")), nil
		}
		for errors.Is(err, os.ErrNotExist) { // the shim creates it when the task is created
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(logPoll):
			}
			if st, serr := r.Status(ctx, id); serr == nil && st.State.Terminal() {
				return io.NopCloser(strings.NewReader("")), nil
			}
			f, err = os.Open(p)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("containerd: logs %s: %w", id, err)
	}
	if !follow {
		return f, nil
	}
	return &follower{ctx: ctx, f: f, done: func() bool {
		st, err := r.Status(ctx, id)
		return err != nil || st.State.Terminal()
	}}, nil
}

// follower reads a growing file until done reports true at an EOF.
type follower struct {
	ctx      context.Context
	f        *os.File
	done     func() bool
	finished bool
}

func (fl *follower) Read(p []byte) (int, error) {
	for {
		n, err := fl.f.Read(p)
		if n > 0 || (err != nil && err != io.EOF) {
			return n, err
		}
		if fl.finished {
			return 0, io.EOF
		}
		// Check before the final read so output written just before exit is not lost.
		if fl.done() {
			fl.finished = true
			continue
		}
		select {
		case <-fl.ctx.Done():
			return 0, fl.ctx.Err()
		case <-time.After(logPoll):
		}
	}
}

func (fl *follower) Close() error { return fl.f.Close() }

// cleanOutput checks that an output path stays inside the output directory.
func cleanOutput(p string) (string, error) {
	c := path.Clean(strings.TrimPrefix(p, "./"))
	if p == "" || path.IsAbs(c) || c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%w: output path %q must be relative to the output directory", runtimes.ErrInvalid, p)
	}
	return c, nil
}

// Collect implements runtimes.Runtime: it copies the task's declared
// outputs (every regular file when none are declared) from its output
// directory to dir and returns them with sha256 digests. Only a finished
// task is collected. Files are read through an os.Root so that symlinks
// the container left cannot point outside its output directory. Repeating
// it rewrites the same files.
func (r *Runtime) Collect(ctx context.Context, id string, dir string) ([]runtimes.Output, error) {
	rec, err := r.readRecord(id)
	if err != nil {
		return nil, err
	}
	st, err := r.Status(ctx, id)
	if err != nil {
		return nil, err
	}
	if !st.State.Terminal() {
		return nil, fmt.Errorf("%w: %s is %s", runtimes.ErrNotDone, id, st.State)
	}
	root, err := os.OpenRoot(filepath.Join(r.taskDir(id), "out"))
	if err != nil {
		return nil, fmt.Errorf("containerd: outputs of %s: %w", id, err)
	}
	defer root.Close()
	var names []string
	for _, o := range rec.Spec.Outputs {
		c, err := cleanOutput(o)
		if err != nil {
			return nil, err
		}
		names = append(names, c)
	}
	if len(rec.Spec.Outputs) == 0 {
		err := fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				names = append(names, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("containerd: outputs of %s: %w", id, err)
		}
	}
	sort.Strings(names)
	outs := make([]runtimes.Output, 0, len(names))
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		o, err := copyOutput(root, name, dir)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %s: %v", runtimes.ErrOutput, id, name, err)
		}
		outs = append(outs, o)
	}
	return outs, nil
}

func copyOutput(root *os.Root, name, dir string) (runtimes.Output, error) {
	src, err := root.Open(name)
	if err != nil {
		return runtimes.Output{}, err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return runtimes.Output{}, err
	}
	if !fi.Mode().IsRegular() {
		return runtimes.Output{}, errors.New("not a regular file")
	}
	local, err := runtimes.OutputPath(dir, name)
	if err != nil {
		return runtimes.Output{}, err
	}
	return runtimes.SaveOutput(local, name, src, runtimes.MaxOutputBytes)
}

func writeJSONFile(p string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("containerd: %s: %w", filepath.Base(p), err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return fmt.Errorf("containerd: %w", err)
	}
	return nil
}
