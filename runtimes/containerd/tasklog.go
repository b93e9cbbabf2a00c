package containerd

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/pkg/cio"
)

// A task's stdout and stderr go to task.log through a log writer that
// containerd's shim starts next to the task (a "binary://" log URI): this
// very executable, re-run with logArg. It belongs to the shim, so the log
// survives the client like a plain log file would, and it stops writing
// past a byte limit while still draining the task's pipes, so a task that
// prints endlessly neither fills the disk nor blocks.

// logArg is the argument the shim passes to this executable to make it a
// log writer; its value is "LIMIT:PATH".
const logArg = "accord-task-log"

func init() {
	// The shim runs the log writer with only CONTAINER_ID and
	// CONTAINER_NAMESPACE set; the process does nothing else.
	if len(os.Args) == 3 && os.Args[1] == logArg && os.Getenv("CONTAINER_ID") != "" {
		os.Exit(logMain(os.Args[2]))
	}
}

// logCreator returns the task IO that writes the task's output to path,
// bounded by limit bytes. Without a path to this executable it falls back
// to an unbounded file written by the shim.
func logCreator(path string, limit int64) cio.Creator {
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		slog.Warn("containerd: task.log is unbounded: no path to this executable for the log writer", "err", err)
		return cio.LogFile(path)
	}
	return cio.BinaryIO(exe, map[string]string{logArg: strconv.FormatInt(limit, 10) + ":" + path})
}

// logMain is the log writer: it appends the task's stdout (fd 3) and
// stderr (fd 4) to the file, tells the shim it is ready by closing fd 5,
// and returns when both streams end.
func logMain(arg string) int {
	lim, path, ok := strings.Cut(arg, ":")
	limit, err := strconv.ParseInt(lim, 10, 64)
	if !ok || err != nil || !filepath.IsAbs(path) {
		fmt.Fprintf(os.Stderr, "accord task log: bad argument %q\n", arg)
		return 2
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "accord task log:", err)
		return 1
	}
	defer f.Close()
	w := &cappedWriter{w: f, left: limit, limit: limit}
	os.NewFile(5, "ready").Close()
	var wg sync.WaitGroup
	for _, fd := range []uintptr{3, 4} {
		wg.Go(func() {
			_, _ = io.Copy(w, os.NewFile(fd, "task output"))
		})
	}
	wg.Wait()
	return 0
}

// cappedWriter writes up to limit bytes to w, then one notice, then
// discards. It never fails, so that a copy into it keeps draining.
type cappedWriter struct {
	mu          sync.Mutex
	w           io.Writer
	left, limit int64
	noted       bool
}

func (c *cappedWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(int64(len(p)), c.left)
	if n > 0 {
		if _, err := c.w.Write(p[:n]); err != nil {
			c.left = 0 // a failing file: stop trying, keep draining
		} else {
			c.left -= n
		}
	}
	if n < int64(len(p)) && !c.noted {
		c.noted = true
		fmt.Fprintf(c.w, "\n[accord: task.log reached its limit of %d bytes; further output is discarded]\n", c.limit)
	}
	return len(p), nil
}
