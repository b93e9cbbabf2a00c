package artifacts

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLocalRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := Local{Dir: t.TempDir()}
	d, err := s.Put(ctx, []byte("plan"))
	if err != nil {
		t.Fatal(err)
	}
	if d != Digest([]byte("plan")) {
		t.Fatalf("digest %s", d)
	}
	again, err := s.Put(ctx, []byte("plan"))
	if err != nil || again != d {
		t.Fatalf("second put: %s %v", again, err)
	}
	b, err := s.Get(ctx, d, 1<<20)
	if err != nil || string(b) != "plan" {
		t.Fatalf("get: %q %v", b, err)
	}
	if _, err := s.Get(ctx, d, 3); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("limit: %v", err)
	}
	if _, err := s.Get(ctx, Digest([]byte("other")), 10); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
}

func TestLocalRejectsBadDigestsAndCorruption(t *testing.T) {
	ctx := context.Background()
	s := Local{Dir: t.TempDir()}
	for _, d := range []string{"", "sha256:../../etc/passwd", "md5:abc", "sha256:" + strings.Repeat("G", 64), "sha256:" + strings.Repeat("A", 64)} {
		if _, err := s.Get(ctx, d, 10); !errors.Is(err, ErrDigest) {
			t.Errorf("Get(%q): %v, want ErrDigest", d, err)
		}
	}
	d, err := s.Put(ctx, []byte("result"))
	if err != nil {
		t.Fatal(err)
	}
	h := d[len("sha256:"):]
	if err := os.WriteFile(filepath.Join(s.Dir, "sha256", h[:2], h), []byte("forged"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, d, 100); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(s.Dir, "sha256", h[:2], ".put-*"))
	if len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
}
