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
)

// PutReader streams r into the store: at most limit bytes (a longer stream
// is ErrTooLarge and nothing is kept). The digest is computed while the
// bytes go to a temporary file, which is then renamed into place, so a blob
// is never visible half-written. Idempotent: storing bytes that are already
// there leaves one blob.
func (l Local) PutReader(ctx context.Context, r io.Reader, limit int64) (digest string, size int64, err error) {
	if limit < 0 {
		return "", 0, fmt.Errorf("artifacts: put: negative limit %d", limit)
	}
	tmpDir := filepath.Join(l.Dir, "tmp")
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return "", 0, fmt.Errorf("artifacts: put: %w", err)
	}
	f, err := os.CreateTemp(tmpDir, "put-*")
	if err != nil {
		return "", 0, fmt.Errorf("artifacts: put: %w", err)
	}
	defer func() {
		if f != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	src := &ctxReader{ctx: ctx, r: io.LimitReader(r, limit+1), progress: l.Progress}
	n, err := io.Copy(io.MultiWriter(f, h), src)
	if err != nil {
		return "", 0, fmt.Errorf("artifacts: put: %w", err)
	}
	if n > limit {
		return "", 0, fmt.Errorf("%w: over the %d-byte limit", ErrTooLarge, limit)
	}
	if err := f.Chmod(0o600); err != nil {
		return "", 0, fmt.Errorf("artifacts: put: %w", err)
	}
	if err := f.Sync(); err != nil {
		return "", 0, fmt.Errorf("artifacts: put: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", 0, fmt.Errorf("artifacts: put: %w", err)
	}
	hx := hex.EncodeToString(h.Sum(nil))
	p := l.path(hx)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", 0, fmt.Errorf("artifacts: put: %w", err)
	}
	// Same name, same bytes: replacing a blob another writer stored is
	// harmless, and mends one that was corrupted on disk.
	if err := os.Rename(f.Name(), p); err != nil {
		return "", 0, fmt.Errorf("artifacts: put: %w", err)
	}
	f = nil
	if err := syncDir(filepath.Dir(p)); err != nil {
		return "", 0, err
	}
	return "sha256:" + hx, n, nil
}

// ctxReader stops a copy when ctx ends and reports progress.
type ctxReader struct {
	ctx      context.Context
	r        io.Reader
	n        int64
	progress func(int64)
}

func (c *ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(b)
	c.n += int64(n)
	if c.progress != nil && n > 0 {
		c.progress(c.n)
	}
	return n, err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("artifacts: sync %s: %w", filepath.Base(dir), err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("artifacts: sync %s: %w", filepath.Base(dir), err)
	}
	return nil
}
