package artifacts

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/accordmesh/accord/internal/names"
)

// Grants are marker files, Dir/grants/<tenant>/<hex>: a tenant may use a
// digest as an input only when it holds a grant for it. Knowing a digest is
// not enough, since digests of outputs and inputs appear in the public
// transparency log.

func (l Local) grantPath(tenant, h string) string {
	return filepath.Join(l.Dir, "grants", tenant, h)
}

// Grant records that tenant may use digest and, for a tree, every blob the
// tree lists. It trusts its caller: the operator's own push, or Claim's
// checks. Idempotent. A tree's entries are granted before the tree, so that
// a grant on a tree always implies grants on its contents.
func (l Local) Grant(tenant, digest string) error {
	if err := names.Tenant(tenant); err != nil {
		return fmt.Errorf("artifacts: grant: %w", err)
	}
	h, err := hexOf(digest)
	if err != nil {
		return err
	}
	kind, err := l.Kind(context.Background(), digest)
	if err != nil {
		return fmt.Errorf("artifacts: grant: %w", err)
	}
	if kind == KindTree {
		t, err := l.ReadTree(context.Background(), digest)
		if err != nil {
			return fmt.Errorf("artifacts: grant: %w", err)
		}
		for _, e := range t.Entries {
			if err := l.mark(tenant, e.Digest[len("sha256:"):]); err != nil {
				return err
			}
		}
	}
	return l.mark(tenant, h)
}

func (l Local) mark(tenant, h string) error {
	p := l.grantPath(tenant, h)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("artifacts: grant: %w", err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("artifacts: grant: %w", err)
	}
	return f.Close()
}

// Owns reports whether tenant was granted digest.
func (l Local) Owns(tenant, digest string) (bool, error) {
	if err := names.Tenant(tenant); err != nil {
		return false, fmt.Errorf("artifacts: owns: %w", err)
	}
	h, err := hexOf(digest)
	if err != nil {
		return false, err
	}
	_, err = os.Lstat(l.grantPath(tenant, h))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("artifacts: owns: %w", err)
}

// Claim grants tenant a blob it has just uploaded, if the upload proves it
// may have it: a file's bytes are their own proof (the uploader has them),
// but a tree only names blobs, so a tree is granted only when it is a valid
// manifest and every blob it lists is already granted to tenant; otherwise
// ErrNotOwned (or ErrManifest) and nothing is granted. It returns the kind.
func (l Local) Claim(ctx context.Context, tenant, digest string) (kind string, err error) {
	kind, err = l.Kind(ctx, digest)
	if err != nil {
		return "", err
	}
	if kind == KindTree {
		t, err := l.ReadTree(ctx, digest)
		if err != nil {
			return "", err
		}
		for _, e := range t.Entries {
			ok, err := l.Owns(tenant, e.Digest)
			if err != nil {
				return "", err
			}
			if !ok {
				return "", fmt.Errorf("%w: tree entry %q (%s)", ErrNotOwned, e.Path, e.Digest)
			}
		}
	}
	return kind, l.Grant(tenant, digest)
}

// Granted lists the digests granted to tenant, sorted.
func (l Local) Granted(tenant string) ([]string, error) {
	if err := names.Tenant(tenant); err != nil {
		return nil, fmt.Errorf("artifacts: granted: %w", err)
	}
	ents, err := os.ReadDir(filepath.Join(l.Dir, "grants", tenant))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("artifacts: granted: %w", err)
	}
	var out []string
	for _, e := range ents {
		if d := "sha256:" + e.Name(); e.Type().IsRegular() {
			if _, err := hexOf(d); err == nil {
				out = append(out, d)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}
