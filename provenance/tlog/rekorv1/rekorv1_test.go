package rekorv1

import (
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sigstore/rekor/pkg/verify"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/accordmesh/accord/provenance/tlog"
)

func TestNewRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "rekor.example", "ftp://x", "http://", "://x"} {
		if _, err := New(u); !errors.Is(err, ErrBadURL) {
			t.Errorf("New(%q) = %v, want ErrBadURL", u, err)
		}
	}
	if _, err := New("http://127.0.0.1:1", WithEntryKind("rekord"), WithInsecure()); err == nil {
		t.Error("New with kind rekord succeeded")
	}
	l, err := New("https://rekor.example/")
	if err != nil {
		t.Fatal(err)
	}
	if l.Kind() != tlog.KindRekor {
		t.Errorf("Kind = %q", l.Kind())
	}
}

// Plain HTTP, loopback included, needs --insecure (WithInsecure,
// tlog.Config.Insecure); the refusal names the flag.
func TestNewRefusesPlainHTTP(t *testing.T) {
	for _, u := range []string{"http://rekor.example", "http://127.0.0.1:3000", "http://[::1]:3000/"} {
		_, err := New(u)
		if !errors.Is(err, ErrInsecureURL) || !strings.Contains(err.Error(), "--insecure") {
			t.Errorf("New(%q) = %v, want ErrInsecureURL naming --insecure", u, err)
		}
		if _, err := tlog.Open(context.Background(), tlog.Config{Kind: tlog.KindRekor, URL: u}); !errors.Is(err, ErrInsecureURL) {
			t.Errorf("Open(%q) = %v, want ErrInsecureURL", u, err)
		}
		if _, err := New(u, WithInsecure()); err != nil {
			t.Errorf("New(%q, WithInsecure()) = %v", u, err)
		}
		if _, err := tlog.Open(context.Background(), tlog.Config{Kind: tlog.KindRekor, URL: u, Insecure: true}); err != nil {
			t.Errorf("Open(%q, Insecure) = %v", u, err)
		}
	}
	if _, err := New("http://user:secret@rekor.example"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("refusal leaks the URL's password: %v", err)
	}
}

// A closed port, a 500 and a 503 are retryable; a 404 is not found; a
// cancelled context stays a cancellation.
func TestErrorClassification(t *testing.T) {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	l, err := New(dead, WithTimeout(2*time.Second), WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Info(ctx); !errors.Is(err, tlog.ErrUnavailable) {
		t.Errorf("Info on closed port = %v, want ErrUnavailable", err)
	}
	s := newTestSigner(t)
	if _, err := l.Upload(ctx, s.envelope(t, randomDigest(t)), s.pem); !errors.Is(err, tlog.ErrUnavailable) {
		t.Errorf("Upload on closed port = %v, want ErrUnavailable", err)
	}

	var status atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(status.Load()))
		_, _ = w.Write([]byte(`{"code":1,"message":"synthetic"}`))
	}))
	defer srv.Close()
	l, err = New(srv.URL, WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		code int
		want error
	}{{500, tlog.ErrUnavailable}, {503, tlog.ErrUnavailable}, {429, tlog.ErrUnavailable}, {404, tlog.ErrNotFound}} {
		status.Store(int32(c.code))
		if _, err := l.Get(ctx, strings.Repeat("ab", 32)); !errors.Is(err, c.want) {
			t.Errorf("Get with HTTP %d = %v, want %v", c.code, err, c.want)
		}
	}
	status.Store(400)
	if _, err := l.Upload(ctx, s.envelope(t, randomDigest(t)), s.pem); !errors.Is(err, tlog.ErrInvalidEntry) {
		t.Errorf("Upload with HTTP 400 = %v, want ErrInvalidEntry", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Info(cctx); !errors.Is(err, context.Canceled) || errors.Is(err, tlog.ErrUnavailable) {
		t.Errorf("Info with cancelled ctx = %v, want context.Canceled only", err)
	}
}

func TestBadInputNeverReachesTheServer(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(500)
	}))
	defer srv.Close()
	l, err := New(srv.URL, WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, other := newTestSigner(t), newTestSigner(t)
	env := s.envelope(t, randomDigest(t))
	for name, c := range map[string]struct{ env, key []byte }{
		"empty envelope": {nil, s.pem},
		"empty key":      {env, nil},
		"not json":       {[]byte("{"), s.pem},
		"wrong key":      {env, other.pem},
		"key not pem":    {env, []byte("nope")},
	} {
		if _, err := l.Upload(ctx, c.env, c.key); !errors.Is(err, tlog.ErrInvalidEntry) {
			t.Errorf("%s: Upload = %v, want ErrInvalidEntry", name, err)
		}
	}
	if _, err := l.Get(ctx, "xyz"); !errors.Is(err, tlog.ErrNotFound) {
		t.Errorf("Get(malformed) = %v, want ErrNotFound", err)
	}
	if _, err := l.GetByIndex(ctx, -1); !errors.Is(err, tlog.ErrNotFound) {
		t.Errorf("GetByIndex(-1) = %v, want ErrNotFound", err)
	}
	if _, err := l.Search(ctx, tlog.Query{}); err == nil {
		t.Error("empty Search succeeded")
	}
	if _, err := l.Search(ctx, tlog.Query{Hash: "md5:abc"}); err == nil {
		t.Error("Search with malformed hash succeeded")
	}
	if _, err := l.ConsistencyProof(ctx, 0, 3); !errors.Is(err, tlog.ErrInvalidRange) {
		t.Errorf("ConsistencyProof(0,3) = %v, want ErrInvalidRange", err)
	}
	if _, err := l.ConsistencyProof(ctx, 4, 3); !errors.Is(err, tlog.ErrInvalidRange) {
		t.Errorf("ConsistencyProof(4,3) = %v, want ErrInvalidRange", err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("server saw %d requests for bad input", n)
	}
}

// rekorURL is the real Rekor v1 server that scripts/services/rekor.sh
// starts for `make test`.
func rekorURL(t testing.TB) string {
	u := os.Getenv("ACCORD_TEST_REKOR_URL")
	if u == "" {
		t.Skip("ACCORD_TEST_REKOR_URL not set: start the Rekor stack with scripts/services/rekor.sh start ENVFILE (make test does)")
	}
	return u
}

func TestRealRekor(t *testing.T) {
	ctx := context.Background()
	l, err := New(rekorURL(t), WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := l.PublicKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}

	s := newTestSigner(t)
	subject := randomDigest(t)
	env := s.envelope(t, subject)
	e, err := l.Upload(ctx, env, s.pem)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.UUID) != 80 || e.LogIndex == nil || e.Verification == nil || e.Verification.InclusionProof == nil {
		t.Fatalf("entry lacks uuid, index or proof: %+v", e)
	}
	if err := verify.VerifyLogEntry(ctx, &e.LogEntryAnon, verifier); err != nil {
		t.Fatalf("VerifyLogEntry(upload): %v", err)
	}
	info1, err := l.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Idempotent: the same envelope again is the same entry (Rekor's 409).
	again, err := l.Upload(ctx, env, s.pem)
	if err != nil {
		t.Fatalf("second upload: %v", err)
	}
	if again.UUID != e.UUID || *again.LogIndex != *e.LogIndex {
		t.Fatalf("second upload gave %s@%d, first %s@%d", again.UUID, *again.LogIndex, e.UUID, *e.LogIndex)
	}

	got, err := l.Get(ctx, e.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Body != e.Body {
		t.Error("Get returned another body")
	}
	if got.Attestation == nil || len(got.Attestation.Data) == 0 {
		t.Error("intoto entry lost its payload: is attestation storage on?")
	}
	if err := verify.VerifyLogEntry(ctx, &got.LogEntryAnon, verifier); err != nil {
		t.Fatalf("VerifyLogEntry(get): %v", err)
	}
	byShort, err := l.Get(ctx, e.UUID[16:])
	if err != nil || byShort.UUID != e.UUID {
		t.Errorf("Get(64-hex uuid) = %v, %v", byShort, err)
	}
	byIndex, err := l.GetByIndex(ctx, *e.LogIndex)
	if err != nil {
		t.Fatal(err)
	}
	if byIndex.UUID != e.UUID {
		t.Errorf("GetByIndex = %s, want %s", byIndex.UUID, e.UUID)
	}

	// Search by subject, by key, by both; a stranger's key finds nothing.
	for name, q := range map[string]tlog.Query{
		"subject": {Hash: "sha256:" + subject},
		"key":     {PublicKeyPEM: s.pem},
		"both":    {Hash: "sha256:" + strings.ToUpper(subject), PublicKeyPEM: s.pem},
	} {
		uuids, err := l.Search(ctx, q)
		if err != nil {
			t.Fatalf("Search by %s: %v", name, err)
		}
		if !containsLeaf(uuids, e.UUID) {
			t.Errorf("Search by %s = %v, want %s", name, uuids, e.UUID)
		}
	}
	none, err := l.Search(ctx, tlog.Query{Hash: "sha256:" + subject, PublicKeyPEM: newTestSigner(t).pem})
	if err != nil || len(none) != 0 {
		t.Errorf("Search with a stranger's key = %v, %v; want nothing", none, err)
	}

	// A second entry, then a consistency proof between the two tree heads.
	if _, err := l.Upload(ctx, s.envelope(t, randomDigest(t)), s.pem); err != nil {
		t.Fatal(err)
	}
	info2, err := l.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hashes, err := l.ConsistencyProof(ctx, info1.TreeSize, info2.TreeSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyConsistency(info1, info2, hashes); err != nil {
		t.Errorf("consistency %d→%d: %v", info1.TreeSize, info2.TreeSize, err)
	}
	if _, err := l.ConsistencyProof(ctx, 1, info2.TreeSize+1000); !errors.Is(err, tlog.ErrInvalidRange) {
		t.Errorf("ConsistencyProof beyond the tree = %v, want ErrInvalidRange", err)
	}

	if _, err := l.Get(ctx, randomDigest(t)); !errors.Is(err, tlog.ErrNotFound) {
		t.Errorf("Get(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := l.GetByIndex(ctx, info2.TreeSize+1000); !errors.Is(err, tlog.ErrNotFound) {
		t.Errorf("GetByIndex(beyond) = %v, want ErrNotFound", err)
	}
	if _, err := l.Upload(ctx, env, newTestSigner(t).pem); !errors.Is(err, tlog.ErrInvalidEntry) {
		t.Errorf("Upload with the wrong key = %v, want ErrInvalidEntry", err)
	}
}

func TestRealRekorDSSEKind(t *testing.T) {
	ctx := context.Background()
	l, err := New(rekorURL(t), WithEntryKind(KindDSSE), WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	s := newTestSigner(t)
	subject := randomDigest(t)
	env := s.envelope(t, subject)
	e, err := l.Upload(ctx, env, s.pem)
	if err != nil {
		t.Fatal(err)
	}
	again, err := l.Upload(ctx, env, s.pem)
	if err != nil || again.UUID != e.UUID {
		t.Fatalf("second dsse upload = %v, %v; want %s", again, err, e.UUID)
	}
	uuids, err := l.Search(ctx, tlog.Query{Hash: "sha256:" + subject, PublicKeyPEM: s.pem})
	if err != nil || !containsLeaf(uuids, e.UUID) {
		t.Errorf("Search = %v, %v; want %s", uuids, err, e.UUID)
	}
}

func containsLeaf(uuids []string, uuid string) bool {
	for _, u := range uuids {
		if len(u) >= 64 && u[len(u)-64:] == uuid[len(uuid)-64:] {
			return true
		}
	}
	return false
}

func verifyConsistency(a, b *tlog.Info, hashes []string) error {
	ra, err := hex.DecodeString(a.RootHash)
	if err != nil {
		return err
	}
	rb, err := hex.DecodeString(b.RootHash)
	if err != nil {
		return err
	}
	var p [][]byte
	for _, h := range hashes {
		x, err := hex.DecodeString(h)
		if err != nil {
			return err
		}
		p = append(p, x)
	}
	return proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(a.TreeSize), uint64(b.TreeSize), p, ra, rb)
}
