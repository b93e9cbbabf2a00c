// Package atomicfile writes files whole: a reader of the path sees the old
// content or the new, never a part, and after a crash the new content is
// either complete or absent.
//
// Each write goes to a temporary file in the destination's directory (so
// that the final rename or link stays on one file system) named
// ".<base>.tmp-*", is flushed to disk, and is then renamed over the
// destination (WriteFile, Write) or linked to it when nothing is there yet
// (WriteNew). The directory is flushed afterwards so that the new name
// itself survives a crash. The temporary file is removed on every failure.
//
// Permissions are set exactly as given (the umask does not apply). The
// destination's directory must exist.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile replaces path with data, atomically, with permissions perm.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return Write(path, perm, writeAll(data))
}

// Write replaces path, atomically, with what fill writes to w, with
// permissions perm. When fill fails, path is left as it was and fill's
// error is returned as it is.
func Write(path string, perm os.FileMode, fill func(w io.Writer) error) error {
	tmp, err := temp(path, perm, fill)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("atomicfile: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// WriteNew writes data to path with permissions perm only if nothing is
// there yet, atomically also against writers in other processes: the
// first complete write stands. created reports whether this call wrote it;
// an existing path is not an error.
func WriteNew(path string, data []byte, perm os.FileMode) (created bool, err error) {
	tmp, err := temp(path, perm, writeAll(data))
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("atomicfile: %w", err)
	}
	return true, syncDir(filepath.Dir(path))
}

// temp writes a complete, flushed temporary file next to path and returns
// its name; on failure it leaves none.
func temp(path string, perm os.FileMode, fill func(w io.Writer) error) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("atomicfile: %w", err)
	}
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	if err := f.Chmod(perm); err != nil {
		return fail(fmt.Errorf("atomicfile: %w", err))
	}
	if err := fill(f); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("atomicfile: %w", err))
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("atomicfile: %w", err)
	}
	return f.Name(), nil
}

// syncDir flushes a directory, making the names created in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("atomicfile: sync directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("atomicfile: sync directory: %w", err)
	}
	return nil
}

func writeAll(data []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}
}
