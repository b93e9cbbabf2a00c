package models

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"syscall"

	"github.com/accordmesh/accord/internal/bounded"
)

// HashDir returns "sha256:<hex>" for every regular file under dir, keyed by
// its "/"-separated path relative to dir (see ScanDir).
func HashDir(dir string) (map[string]string, error) {
	files, err := ScanDir(dir)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(files))
	for _, f := range files {
		out[f.Path] = f.Digest
	}
	return out, nil
}

// ScanDir returns every regular file under dir, in path order, with its
// "/"-separated relative path, sha256 digest and size; Kind is left for
// KindOf to infer. A symlink, device, fifo or socket
// anywhere under dir is an error, as are more than MaxFiles files, a file
// over MaxFileSize or an unsafe path. Files are opened through an os.Root,
// so a directory swapped for a symlink mid-walk cannot lead outside dir,
// and read as streams: memory stays constant whatever their size.
func ScanDir(dir string) ([]File, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("models: open model directory: %w", err)
	}
	defer root.Close()
	var out []File
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%w: %q is a %s", bounded.ErrNotRegular, p, d.Type())
		case len(out) >= MaxFiles:
			return fmt.Errorf("models: more than %d files", MaxFiles)
		}
		if err := CheckPath(p); err != nil {
			return err
		}
		f, err := hashFile(root, p)
		if err != nil {
			return err
		}
		out = append(out, f)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("models: scan %s: %w", dir, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// hashFile streams the regular file rel under root through sha256, at most
// MaxFileSize bytes. It is opened non-blocking, so a fifo put in its place
// cannot hang the open, and checked regular after opening.
func hashFile(root *os.Root, rel string) (File, error) {
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return File{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return File{}, err
	}
	if !fi.Mode().IsRegular() {
		return File{}, fmt.Errorf("%w: %q is a %s", bounded.ErrNotRegular, rel, fi.Mode().Type())
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return File{}, fmt.Errorf("read %q: %w", rel, err)
	}
	if n > MaxFileSize {
		return File{}, fmt.Errorf("%w: %q is larger than %d bytes", bounded.ErrTooLarge, rel, int64(MaxFileSize))
	}
	return File{Path: rel, Digest: "sha256:" + hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}
