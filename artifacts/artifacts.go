// Package artifacts is Accord's content-addressed store: blobs named by the
// sha256 digest of their bytes ("sha256:<hex>"). The job workflow passes
// large values (compiled plans, task results) by digest instead of by value,
// so that Temporal's history holds references, not documents; activities on
// any worker that reaches the store read them back and check the digest.
//
// Local is the default backend, a directory under $ACCORD_HOME. Writes are
// atomic and idempotent (a blob that exists is not written again); reads are
// bounded and verified, so a corrupted or substituted file is an error, never
// data.
//
// Tenants' inputs are artifacts too (`accord data push`, POST /v1/data): a
// file is one blob, a directory is a tree manifest blob (tree.go) listing
// file blobs. Content addressing is not access control (output digests are
// public in the transparency log), so a tenant may use a digest only when it
// was granted it (grants.go), and a provider copies an input out of the
// store, verifying every blob, before it mounts it (materialize.go).
package artifacts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/accordmesh/accord/internal/atomicfile"
)

// Sentinel errors.
var (
	ErrNotFound = errors.New("artifacts: not found")
	ErrDigest   = errors.New("artifacts: invalid digest")
	ErrTooLarge = errors.New("artifacts: blob too large")
	ErrCorrupt  = errors.New("artifacts: content does not match its digest")
	ErrManifest = errors.New("artifacts: invalid tree manifest")
	ErrRefused  = errors.New("artifacts: refused")
	ErrNotOwned = errors.New("artifacts: digest not granted to tenant")
)

// Store is a content-addressed blob store.
type Store interface {
	// Put stores b and returns its digest. Idempotent.
	Put(ctx context.Context, b []byte) (string, error)
	// Get returns the blob with the digest, at most limit bytes (a larger
	// blob is ErrTooLarge), verified against the digest.
	Get(ctx context.Context, digest string, limit int64) ([]byte, error)
}

// Digest returns the store's name for b: "sha256:<hex>".
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// hexOf checks a digest's syntax and returns its hex part.
func hexOf(digest string) (string, error) {
	h, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(h) != sha256.Size*2 {
		return "", fmt.Errorf("%w: %q", ErrDigest, digest)
	}
	if _, err := hex.DecodeString(h); err != nil || strings.ToLower(h) != h {
		return "", fmt.Errorf("%w: %q", ErrDigest, digest)
	}
	return h, nil
}

// Local is a Store in a directory: blobs live at Dir/sha256/<hex[:2]>/<hex>,
// grants at Dir/grants/<tenant>/<hex>.
type Local struct {
	Dir string
	// Progress, when set, is called with the running count of bytes that
	// PutReader (and PutTree, across its files) has stored, for progress
	// lines on long pushes.
	Progress func(stored int64)
}

// DefaultDir is the local store under an Accord home.
func DefaultDir(home string) string { return filepath.Join(home, "artifacts") }

func (l Local) path(h string) string { return filepath.Join(l.Dir, "sha256", h[:2], h) }

// Put implements Store.
func (l Local) Put(_ context.Context, b []byte) (string, error) {
	d := Digest(b)
	p := l.path(d[len("sha256:"):])
	if _, err := os.Stat(p); err == nil {
		return d, nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", fmt.Errorf("artifacts: put: %w", err)
	}
	// Content-addressed: whichever writer comes first wrote the same bytes.
	if _, err := atomicfile.WriteNew(p, b, 0o600); err != nil {
		return "", fmt.Errorf("artifacts: put: %w", err)
	}
	return d, nil
}

// Get implements Store.
func (l Local) Get(_ context.Context, digest string, limit int64) ([]byte, error) {
	h, err := hexOf(digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(l.path(h))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, digest)
	}
	if err != nil {
		return nil, fmt.Errorf("artifacts: get %s: %w", digest, err)
	}
	defer f.Close()
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("artifacts: get %s: %w", digest, err)
	}
	if n > limit {
		return nil, fmt.Errorf("%w: %s is over %d bytes", ErrTooLarge, digest, limit)
	}
	if Digest(buf.Bytes()) != digest {
		return nil, fmt.Errorf("%w: %s", ErrCorrupt, digest)
	}
	return buf.Bytes(), nil
}
