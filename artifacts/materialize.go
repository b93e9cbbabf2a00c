package artifacts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// Materialize makes digest available, read-only, at dst/sha256/<hex>: a
// file for a file blob, a directory for a tree. Every blob is copied out of
// the store and its size and digest verified before the copy becomes
// visible: the copy is built under a temporary name and renamed into place,
// so a partial or corrupt copy is never seen. A tree's manifest is validated
// as hostile input (ParseTree) before anything is written, and its files are
// written through an os.Root. Idempotent, and safe for concurrent callers in
// one or more processes: the first rename wins and later callers find it.
// It returns the path.
func (l Local) Materialize(ctx context.Context, digest, dst string) (path string, err error) {
	return materialize(ctx, l, digest, dst)
}

// source is where materialize reads blobs: the local directory, or the
// control plane's store over HTTP.
type source interface {
	Kind(ctx context.Context, digest string) (string, error)
	ReadTree(ctx context.Context, digest string) (Tree, error)
	// copyBlob copies the blob with digest to w, verifying that it has
	// size bytes (size < 0: any size the source allows) and hashes to
	// digest.
	copyBlob(ctx context.Context, digest string, size int64, w io.Writer) error
}

func materialize(ctx context.Context, src source, digest, dst string) (path string, err error) {
	h, err := hexOf(digest)
	if err != nil {
		return "", err
	}
	kind, err := src.Kind(ctx, digest)
	if err != nil {
		return "", err
	}
	base := filepath.Join(dst, "sha256")
	final := filepath.Join(base, h)
	if ok, err := present(final, kind); ok || err != nil {
		return final, err
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", fmt.Errorf("artifacts: materialize %s: %w", digest, err)
	}
	if kind == KindTree {
		err = materializeTree(ctx, src, digest, base, final)
	} else {
		err = materializeFile(ctx, src, digest, base, final)
	}
	if err != nil {
		return "", fmt.Errorf("artifacts: materialize %s: %w", digest, err)
	}
	return final, nil
}

// present reports whether a finished copy of kind is at p.
func present(p, kind string) (bool, error) {
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("artifacts: materialize: %w", err)
	case kind == KindTree && fi.IsDir(), kind == KindFile && fi.Mode().IsRegular():
		return true, nil
	}
	return false, fmt.Errorf("artifacts: materialize: %s exists and is not a %s", p, kind)
}

func materializeFile(ctx context.Context, src source, digest, base, final string) error {
	tmp, err := os.CreateTemp(base, ".tmp-"+filepath.Base(final)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	err = src.copyBlob(ctx, digest, -1, tmp)
	if err == nil {
		err = tmp.Chmod(0o444)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// Same verified bytes whoever wins: replacing another caller's copy is
	// harmless.
	return os.Rename(tmp.Name(), final)
}

func materializeTree(ctx context.Context, src source, digest, base, final string) (err error) {
	t, err := src.ReadTree(ctx, digest)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(base, ".tmp-"+filepath.Base(final)+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			removeTree(tmp, t.Dirs)
		}
	}()
	if err := fillTree(ctx, src, t, tmp); err != nil {
		return err
	}
	// Read-only from the leaves up, then the top.
	for _, d := range slices.Backward(t.Dirs) {
		if err := os.Chmod(filepath.Join(tmp, filepath.FromSlash(d)), 0o555); err != nil {
			return err
		}
	}
	if err := os.Chmod(tmp, 0o555); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		// Another caller's rename won: its copy is as good as ours.
		if ok, perr := present(final, KindTree); ok && perr == nil {
			removeTree(tmp, t.Dirs)
			return nil
		}
		return err
	}
	return nil
}

// fillTree writes t's directories and verified files under dir.
func fillTree(ctx context.Context, src source, t Tree, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, d := range t.Dirs { // sorted: parents come first
		if err := root.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	for _, e := range t.Entries {
		perm := os.FileMode(0o444)
		if e.Mode == "0755" {
			perm = 0o555
		}
		f, err := root.OpenFile(e.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if err != nil {
			return err
		}
		err = src.copyBlob(ctx, e.Digest, e.Size, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", e.Path, err)
		}
	}
	return nil
}

// removeTree removes a temporary copy, making its directories writable
// first.
func removeTree(dir string, dirs []string) {
	os.Chmod(dir, 0o755)
	for _, d := range dirs {
		os.Chmod(filepath.Join(dir, filepath.FromSlash(d)), 0o755)
	}
	os.RemoveAll(dir)
}

// copyBlob copies the blob with digest to w, verifying that it has size
// bytes (size < 0: the stored file's size) and hashes to digest.
func (l Local) copyBlob(ctx context.Context, digest string, size int64, w io.Writer) error {
	h, err := hexOf(digest)
	if err != nil {
		return err
	}
	f, err := os.Open(l.path(h))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNotFound, digest)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if size < 0 {
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		size = fi.Size()
	}
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, sum), &ctxReader{ctx: ctx, r: io.LimitReader(f, size+1)})
	if err != nil {
		return err
	}
	if n != size || hex.EncodeToString(sum.Sum(nil)) != h {
		return fmt.Errorf("%w: %s", ErrCorrupt, digest)
	}
	return nil
}
