package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/accordmesh/accord/models"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote"
)

// Pull inspects ref (see Inspect) and writes the model's files under
// dest, which is created if missing and must be empty. Files are written
// through an os.Root, so no layer can write outside dest; each blob is
// streamed, read up to its descriptor's size and digest-verified, and a
// file that fails is removed. A layer whose filepath annotation is not a
// safe relative path is refused.
func (c *Client) Pull(ctx context.Context, ref, dest string) (*Model, error) {
	m, err := c.Inspect(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("registry: pull: %w", err)
	}
	if err := c.pull(ctx, m, dest); err != nil {
		return nil, fmt.Errorf("registry: pull %s: %w", ref, err)
	}
	return m, nil
}

func (c *Client) pull(ctx context.Context, m *Model, dest string) error {
	for _, l := range m.Layers {
		if err := models.CheckPath(l.Annotations[models.AnnotationFilepath]); err != nil {
			return fmt.Errorf("%w: layer %s: %v", ErrInvalid, l.Digest, err)
		}
		if l.Size < 0 || l.Size > models.MaxFileSize {
			return fmt.Errorf("%w: layer %s is %d bytes", ErrInvalid, l.Digest, l.Size)
		}
	}
	root, err := openEmptyDir(dest)
	if err != nil {
		return err
	}
	defer root.Close()
	repo, err := c.repo(m.Manifest.Name)
	if err != nil {
		return err
	}
	for _, l := range m.Layers {
		if err := pullFile(ctx, repo, root, l); err != nil {
			return fmt.Errorf("%s: %w", l.Annotations[models.AnnotationFilepath], err)
		}
	}
	return nil
}

// openEmptyDir creates dest if missing, checks that it is an empty
// directory and opens it as a root.
func openEmptyDir(dest string) (*os.Root, error) {
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return nil, err
	}
	d, err := root.Open(".")
	if err == nil {
		_, err = d.Readdirnames(1)
		d.Close()
	}
	if !errors.Is(err, io.EOF) {
		root.Close()
		if err == nil {
			err = fmt.Errorf("%s is not empty", dest)
		}
		return nil, err
	}
	return root, nil
}

// pullFile streams one layer into its file, at most its descriptor's
// size, verifying size and digest; the file is removed on failure.
func pullFile(ctx context.Context, repo *remote.Repository, root *os.Root, l ocispec.Descriptor) (err error) {
	p := l.Annotations[models.AnnotationFilepath]
	if dir := path.Dir(p); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	f, err := root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = root.Remove(p)
		}
	}()
	rc, err := repo.Blobs().Fetch(ctx, l)
	if err != nil {
		return notFound(err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rc, l.Size+1))
	if err != nil {
		return fmt.Errorf("read blob %s: %w", l.Digest, err)
	}
	if n != l.Size {
		return fmt.Errorf("%w: blob %s is %d bytes, its descriptor says %d", models.ErrVerify, l.Digest, n, l.Size)
	}
	if got := digest.Digest("sha256:" + hex.EncodeToString(h.Sum(nil))); got != l.Digest {
		return fmt.Errorf("%w: blob %s hashes to %s", models.ErrVerify, l.Digest, got)
	}
	return nil
}
