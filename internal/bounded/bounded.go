// Package bounded reads files that someone else controls (a tenant's
// outputs, inputs, spec files and their signatures) without trusting
// their size or type: only regular files, never more than a limit.
package bounded

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// Sentinel errors.
var (
	ErrTooLarge   = errors.New("bounded: file is over the limit")
	ErrNotRegular = errors.New("bounded: not a regular file")
)

// ReadFile reads the regular file at path, at most max bytes. A fifo or a
// device (/dev/zero) is refused before it is read; the file is opened
// non-blocking, so a fifo put in its place cannot hang the open. A file
// over max is ErrTooLarge, whatever its stat says.
func ReadFile(path string, max int64) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("bounded: read %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrTooLarge, max)
	}
	return b, nil
}

// Open opens path for reading if it is a regular file (followed through
// symlinks), without blocking on a fifo.
func Open(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: %s", ErrNotRegular, fi.Mode().Type())
	}
	return f, nil
}
