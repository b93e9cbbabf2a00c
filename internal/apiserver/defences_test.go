package apiserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/policies"
)

func TestUploadLimit(t *testing.T) {
	f := setup(t, WithMaxUpload(1024))
	big, _ := json.Marshal(SubmitRequest{Name: "s.md", Document: "tenant: a\n" + strings.Repeat("#", 2048)})
	code, out := f.call(t, f.tokA, "POST", "/v1/jobs", string(big))
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(out, "1024-byte limit") {
		t.Fatalf("oversized upload: %d %s, want 413 naming the limit", code, out)
	}
	if code, out := f.call(t, f.tokA, "POST", "/v1/jobs", submitBody("a")); code != http.StatusCreated {
		t.Fatalf("upload under the limit: %d %s", code, out)
	}
}

func TestUploadName(t *testing.T) {
	f := setup(t)
	for _, name := range []string{"../x.md", ".hidden.md", "a/b.md", `a\b.md`, "x\x00.md", "c:x.md", "has space.md", strings.Repeat("n", 129)} {
		b, _ := json.Marshal(SubmitRequest{Name: name, Document: "tenant: a"})
		if code, out := f.call(t, f.tokA, "POST", "/v1/jobs", string(b)); code != http.StatusBadRequest {
			t.Errorf("name %q: %d %s, want 400", name, code, out)
		}
	}
	if code, out := f.call(t, f.tokA, "POST", "/v1/jobs", "{not json"); code != http.StatusBadRequest {
		t.Errorf("malformed body: %d %s, want 400", code, out)
	}
}

func TestRateLimitPerToken(t *testing.T) {
	f := setup(t, WithRateLimit(1, 2))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.api.limit.now = func() time.Time { return now }
	get := func(tok string) *http.Response {
		req, _ := http.NewRequest("GET", f.srv.URL+"/v1/jobs", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for i := range 2 {
		if resp := get(f.tokA); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d within the burst: %d", i, resp.StatusCode)
		}
	}
	resp := get(f.tokA)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("over the burst: %d, want 429", resp.StatusCode)
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("Retry-After %q, want whole seconds >= 1", resp.Header.Get("Retry-After"))
	}
	if resp := get(f.tokB); resp.StatusCode != http.StatusOK {
		t.Fatalf("another token is limited by a's bucket: %d", resp.StatusCode)
	}
	now = now.Add(time.Second)
	if resp := get(f.tokA); resp.StatusCode != http.StatusOK {
		t.Fatalf("after a second's refill: %d", resp.StatusCode)
	}
	// Guessing tokens is limited by the caller's address.
	for range 2 {
		get("acc_guess")
	}
	if resp := get("acc_guess2"); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third bad token from one address: %d, want 429", resp.StatusCode)
	}
}

func TestLimiterForgetsIdleBuckets(t *testing.T) {
	l := newLimiter(1, 1)
	now := time.Unix(0, 0)
	l.now = func() time.Time { return now }
	for i := range maxBuckets {
		l.allow(fmt.Sprint(i))
	}
	now = now.Add(2 * time.Second)
	l.allow("new")
	if len(l.buckets) != 1 {
		t.Fatalf("%d buckets kept, want only the new one", len(l.buckets))
	}
}

// expiring is an Authenticator whose tokens have all expired.
type expiring struct{}

func (expiring) Authenticate(context.Context, string) (policies.Principal, error) {
	return policies.Principal{}, fmt.Errorf("%w: %w: tok_x", policies.ErrBadToken, policies.ErrTokenExpired)
}

func TestExpiredAndRevokedTokens(t *testing.T) {
	srv := httptest.NewServer(New(&fakeJobs{jobs: map[string]Job{}}, expiring{}))
	defer srv.Close()
	code, out := fixture{srv: srv}.call(t, "acc_any", "GET", "/v1/jobs", "")
	if code != http.StatusUnauthorized || !strings.Contains(out, "token expired") {
		t.Fatalf("expired token: %d %s, want 401 token expired", code, out)
	}
	f := setup(t)
	if err := f.store.RevokeToken(context.Background(), policies.TokenID(f.tokA)); err != nil {
		t.Fatal(err)
	}
	if code, out := f.call(t, f.tokA, "GET", "/v1/jobs", ""); code != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d %s, want 401", code, out)
	}
}

// TestErrorBodiesHideInternals: a failing upload whose internal error
// names a server path answers without the path; the log has it.
func TestErrorBodiesHideInternals(t *testing.T) {
	var logged bytes.Buffer
	f := setup(t, WithLogger(slog.New(slog.NewTextHandler(&logged, nil))))
	const secret = "/var/lib/accord/uploads/9f86d081/s.md"
	for _, tc := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("apijobs: store upload: open %s: permission denied", secret), http.StatusInternalServerError},
		{fmt.Errorf("%w: specs: read %s: no such file", ErrInvalid, secret), http.StatusUnprocessableEntity},
		{fmt.Errorf("%w: %s", ErrConflict, secret), http.StatusConflict},
	} {
		f.jobs.submitErr = tc.err
		code, out := f.call(t, f.tokA, "POST", "/v1/jobs", submitBody("a"))
		if code != tc.code || strings.Contains(out, "/var/lib") || strings.Contains(out, "apijobs") {
			t.Errorf("%v: %d %s, want %d without the path", tc.err, code, out, tc.code)
		}
	}
	if !strings.Contains(logged.String(), secret) {
		t.Errorf("the detail is not logged: %s", logged.String())
	}
	f.jobs.submitErr = Public(ErrInvalid, "s.md:3:1: tasks: at least one task is required")
	if code, out := f.call(t, f.tokA, "POST", "/v1/jobs", submitBody("a")); code != http.StatusUnprocessableEntity || !strings.Contains(out, "s.md:3:1") {
		t.Errorf("a public error: %d %s, want 422 with its message", code, out)
	}
	var pub *PublicError
	if err := Public(ErrBadRequest, "x"); !errors.Is(err, ErrBadRequest) || !errors.As(err, &pub) {
		t.Error("Public does not wrap its kind")
	}
}

func TestApproverIdentity(t *testing.T) {
	f := setup(t)
	tok, err := f.store.CreateToken(context.Background(), policies.Principal{Tenant: "a", Role: policies.RoleTenant})
	if err != nil {
		t.Fatal(err)
	}
	if code, out := f.call(t, tok, "POST", "/v1/jobs/job-a/approve", ""); code != http.StatusAccepted {
		t.Fatalf("approve: %d %s", code, out)
	}
	want := "approve job-a by a/" + policies.TokenID(tok)
	if got := f.jobs.actions[len(f.jobs.actions)-1]; got != want {
		t.Fatalf("recorded %q, want %q", got, want)
	}
}

func TestHTTPServerLimits(t *testing.T) {
	l := Limits{ReadHeaderTimeout: 200 * time.Millisecond, ReadTimeout: 10 * time.Second, WriteTimeout: time.Second,
		IdleTimeout: time.Second, MaxHeaderBytes: 1024}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}), l)
	go srv.Serve(ln)
	defer srv.Close()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\n") // and never the end of the headers
	// The server answers 408 or just closes; either way it must not wait
	// for the rest of the headers.
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(bufio.NewReader(conn))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("a connection with unfinished headers was held open past ReadHeaderTimeout")
	}

	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/", nil)
	req.Header.Set("X-Big", strings.Repeat("x", 8<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("oversized headers: %d, want 431", resp.StatusCode)
	}
}
