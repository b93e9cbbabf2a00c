package rekorapi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog"
	"github.com/accordmesh/accord/provenance/tlog/embedded"
	"github.com/accordmesh/accord/provenance/tlog/rekorapi"
	_ "github.com/accordmesh/accord/provenance/tlog/rekorv1"
	"github.com/accordmesh/accord/provenance/tlog/tlogtest"
)

// served is an embedded log served with writers over real HTTP on loopback.
type served struct {
	url     string
	log     *embedded.Log
	writers string // writers file
}

func serveLog(t *testing.T, opts ...rekorapi.Option) *served {
	t.Helper()
	dir := t.TempDir()
	l, err := embedded.Open(context.Background(), filepath.Join(dir, "tlog"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := &served{log: l, writers: filepath.Join(dir, "log-writers.json")}
	w, err := rekorapi.OpenWriters(s.writers)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := rekorapi.Server(ln.Addr().String(), rekorapi.NewHandler(l, append([]rekorapi.Option{rekorapi.WithWriters(w)}, opts...)...))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
		l.Close(context.Background())
	})
	s.url = "http://" + ln.Addr().String()
	return s
}

// writer adds a writer and returns a Rekor client logging with its token.
func (s *served) writer(t testing.TB, name string, keys ...*provenance.Key) tlog.Log {
	t.Helper()
	var pems [][]byte
	for _, k := range keys {
		pems = append(pems, k.PublicPEM())
	}
	token, err := rekorapi.AddWriter(s.writers, name, pems)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(token, "acclog_") || len(token) < 40 {
		t.Fatalf("token %q", token)
	}
	return s.client(t, token)
}

func (s *served) client(t testing.TB, token string) tlog.Log {
	t.Helper()
	l, err := tlog.Open(context.Background(), tlog.Config{Kind: tlog.KindRekor, URL: s.url, Insecure: true, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestServedLogConformance runs the backend suite through the Rekor v1
// client with a writer token against the embedded log served over HTTP:
// entries verify (inclusion proof, checkpoint, SET) against the served key.
func TestServedLogConformance(t *testing.T) {
	s := serveLog(t)
	w := s.writer(t, "worker-a")
	tlogtest.Run(t, func(*testing.T) tlog.Log { return w })
}

// TestServedLogRefusesWriters: no token 401, an unknown token 403, a
// signer off the writer's list 403, a removed writer 403 on the running
// server; reads need no token.
func TestServedLogRefusesWriters(t *testing.T) {
	ctx := ctxT(t)
	s := serveLog(t)
	alice, _ := provenance.GenerateKey("")
	mallory, _ := provenance.GenerateKey("")
	pinned := s.writer(t, "provider-a", alice)
	if _, err := rekorapi.AddWriter(s.writers, "provider-a", nil); !errors.Is(err, rekorapi.ErrWriterExists) {
		t.Fatalf("second provider-a: %v", err)
	}

	good := tlogtest.NewFixture(t, alice)
	e, err := pinned.Upload(ctx, good.Envelope, good.Key.PublicPEM())
	if err != nil {
		t.Fatalf("allowed key: %v", err)
	}
	tlogtest.VerifyEntry(t, ctx, pinned, e, good.Envelope)

	anon := s.client(t, "")
	other := tlogtest.NewFixture(t, mallory)
	for _, c := range []struct {
		name   string
		l      tlog.Log
		f      tlogtest.Fixture
		status string
	}{
		{"no token", anon, other, "401"},
		{"unknown token", s.client(t, "acclog_"+strings.Repeat("A", 43)), other, "403"},
		{"key not allowed", pinned, other, "403"},
	} {
		_, err := c.l.Upload(ctx, c.f.Envelope, c.f.Key.PublicPEM())
		if !errors.Is(err, tlog.ErrUnauthorized) || !strings.Contains(err.Error(), c.status) {
			t.Errorf("%s: %v, want %s wrapping tlog.ErrUnauthorized", c.name, err, c.status)
		}
	}
	resp, err := http.Post(s.url+"/api/v1/log/entries", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("raw POST without token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	// Reads stay open, and nothing refused was logged.
	got, err := anon.Get(ctx, e.UUID)
	if err != nil || *got.LogIndex != *e.LogIndex {
		t.Fatalf("read without token: %v", err)
	}
	if info, err := anon.Info(ctx); err != nil || info.TreeSize != 1 {
		t.Fatalf("info: %+v %v (want size 1: refused uploads must not be logged)", info, err)
	}

	if err := rekorapi.RemoveWriter(s.writers, "provider-a"); err != nil {
		t.Fatal(err)
	}
	again := tlogtest.NewFixture(t, alice)
	if _, err := pinned.Upload(ctx, again.Envelope, again.Key.PublicPEM()); !errors.Is(err, tlog.ErrUnauthorized) {
		t.Fatalf("removed writer: %v", err)
	}
}

// TestServedLogBoundsBodies: an authenticated body over the limit is 413;
// an unauthenticated one is refused on its header (401) before it is read.
func TestServedLogBoundsBodies(t *testing.T) {
	s := serveLog(t, rekorapi.WithMaxBody(64<<10))
	token, err := rekorapi.AddWriter(s.writers, "big", nil)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 1<<20)
	for _, c := range []struct {
		token string
		want  int
	}{{token, http.StatusRequestEntityTooLarge}, {"", http.StatusUnauthorized}} {
		req, _ := http.NewRequest(http.MethodPost, s.url+"/api/v1/log/entries", bytes.NewReader(big))
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("token %v: %d, want %d", c.token != "", resp.StatusCode, c.want)
		}
	}
}

// TestServedLogConcurrentWriters: several writers, each pinned to its own
// key, log at once; every entry verifies, no index is handed out twice, and
// the tree holds exactly their entries.
func TestServedLogConcurrentWriters(t *testing.T) {
	ctx := ctxT(t)
	s := serveLog(t)
	const writers, each = 4, 6
	type logged struct {
		w   tlog.Log
		e   *tlog.Entry
		env []byte
	}
	var mu sync.Mutex
	seen := map[int64]string{}
	var done []logged
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for i := range writers {
		key, err := provenance.GenerateKey("")
		if err != nil {
			t.Fatal(err)
		}
		w := s.writer(t, fmt.Sprintf("provider-%d", i), key)
		for range each {
			f := tlogtest.NewFixture(t, key)
			wg.Add(1)
			go func() {
				defer wg.Done()
				e, err := w.Upload(ctx, f.Envelope, f.Key.PublicPEM())
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				defer mu.Unlock()
				done = append(done, logged{w, e, f.Envelope})
				if prev, dup := seen[*e.LogIndex]; dup {
					errs <- fmt.Errorf("index %d given to %s and %s", *e.LogIndex, prev, e.UUID)
				}
				seen[*e.LogIndex] = e.UUID
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, d := range done {
		tlogtest.VerifyEntry(t, ctx, d.w, d.e, d.env)
	}
	info, err := s.log.Info(ctx)
	if err != nil || info.TreeSize != writers*each || len(seen) != writers*each {
		t.Fatalf("tree size %d, %d distinct entries, want %d (%v)", info.TreeSize, len(seen), writers*each, err)
	}
}

// TestServedLogCosignedCheckpoint: the route answers 503 until there is a
// cosigned checkpoint, then the note as given.
func TestServedLogCosignedCheckpoint(t *testing.T) {
	var mu sync.Mutex
	var note []byte
	s := serveLog(t, rekorapi.WithCosigned(func() ([]byte, bool) {
		mu.Lock()
		defer mu.Unlock()
		return note, note != nil
	}))
	get := func() (int, string) {
		resp, err := http.Get(s.url + "/api/v1/log/checkpoint/cosigned")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	if code, _ := get(); code != http.StatusServiceUnavailable {
		t.Fatalf("before any cosignature: %d", code)
	}
	mu.Lock()
	note = []byte("accord.local - 1\n0\nroot\n\n— w1 sig\n")
	mu.Unlock()
	if code, body := get(); code != http.StatusOK || body != string(note) {
		t.Fatalf("cosigned: %d %q", code, body)
	}
}
