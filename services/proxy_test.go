package services

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// replica is a test server answering its version, or 500 when broken.
func replica(t *testing.T, version string, broken bool) Backend {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken {
			http.Error(w, "broken", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, version)
	}))
	t.Cleanup(s.Close)
	return Backend{ID: version + "-" + s.Listener.Addr().String(), Addr: s.Listener.Addr().String(), Version: version}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestProxyBalancesAndSplits(t *testing.T) {
	p := NewProxy(ProxyOptions{})
	front := httptest.NewServer(p)
	defer front.Close()
	a, b := replica(t, "v1", false), replica(t, "v1", false)
	c := replica(t, "v2", true)
	if err := p.SetRoutes(Routes{Stable: []Backend{a, b}, Canary: []Backend{c}, CanaryPercent: 20}); err != nil {
		t.Fatal(err)
	}
	codes := map[int]int{}
	for range 500 {
		code, _ := get(t, front.URL+"/x")
		codes[code]++
	}
	if codes[200] != 400 || codes[500] != 100 {
		t.Fatalf("codes %v, want 400×200 and 100×500 (20 %% canary)", codes)
	}
	w := p.Recorder().Cut("w1")
	if w.Total.Requests != 500 || w.Total.Errors != 100 || w.Total.SuccessBP != 8000 {
		t.Errorf("total %+v", w.Total)
	}
	if v1, v2 := w.Versions["v1"], w.Versions["v2"]; v1.Requests != 400 || v1.Errors != 0 || v2.Requests != 100 || v2.SuccessBP != 0 {
		t.Errorf("versions %+v", w.Versions)
	}
	if w.Total.P50 <= 0 || w.Total.P99 < w.Total.P50 {
		t.Errorf("percentiles %+v", w.Total)
	}
	// A retried cut returns the same window; a new key starts afresh.
	if again := p.Recorder().Cut("w1"); again.Total.Requests != 500 {
		t.Errorf("repeated cut %+v", again.Total)
	}
	if next := p.Recorder().Cut("w2"); next.Total.Requests != 0 || next.Total.SuccessBP != 10000 {
		t.Errorf("next window %+v", next.Total)
	}

	// Promotion: every request to v2's good replacement.
	d := replica(t, "v2", false)
	if err := p.SetRoutes(Routes{Stable: []Backend{d}}); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if code, body := get(t, front.URL+"/"); code != 200 || body != "v2" {
			t.Fatalf("after promotion: %d %q", code, body)
		}
	}
}

func TestProxyNoReplicaAndDeadReplica(t *testing.T) {
	p := NewProxy(ProxyOptions{})
	front := httptest.NewServer(p)
	defer front.Close()
	if code, body := get(t, front.URL); code != http.StatusServiceUnavailable || !strings.Contains(body, "no ready replica") {
		t.Fatalf("no routes: %d %q", code, body)
	}
	dead := httptest.NewServer(http.NotFoundHandler())
	addr := dead.Listener.Addr().String()
	dead.Close()
	if err := p.SetRoutes(Routes{Stable: []Backend{{ID: "r0", Addr: addr, Version: "v1"}}}); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, front.URL); code != http.StatusBadGateway {
		t.Fatalf("dead replica: %d", code)
	}
	w := p.Recorder().Cut("k")
	if w.Unrouted != 1 || w.Total.Requests != 2 || w.Total.Errors != 2 || w.Versions["v1"].Errors != 1 {
		t.Errorf("window %+v", w)
	}
}

func TestRoutesValidate(t *testing.T) {
	for _, r := range []Routes{
		{CanaryPercent: 101},
		{Stable: []Backend{{ID: "a", Addr: "nohost"}}},
		{Canary: []Backend{{ID: "", Addr: "127.0.0.1:1"}}},
	} {
		if err := NewProxy(ProxyOptions{}).SetRoutes(r); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v", r, err)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.95, 950 * time.Millisecond}, {0.99, 990 * time.Millisecond}} {
		got := h.quantile(c.q)
		if d := float64(got-c.want) / float64(c.want); d < 0 || d > 0.03 {
			t.Errorf("q%.2f = %v, want %v within 3 %%", c.q, got, c.want)
		}
	}
}

func TestProbe(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.Error(w, "no", http.StatusServiceUnavailable)
		}
	}))
	defer s.Close()
	addr := s.Listener.Addr().String()
	if err := Probe(t.Context(), addr, "/healthz", time.Second); err != nil {
		t.Fatal(err)
	}
	if err := Probe(t.Context(), addr, "/other", time.Second); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("failing probe: %v", err)
	}
}

// deadReplica is an address that refuses connections: a listener opened
// and closed (a killed replica's port).
func deadReplica(t *testing.T, version string) Backend {
	t.Helper()
	s := httptest.NewServer(http.NotFoundHandler())
	addr := s.Listener.Addr().String()
	s.Close()
	return Backend{ID: version + "-dead-" + addr, Addr: addr, Version: version}
}

func TestProxyRetriesRefusedIdempotent(t *testing.T) {
	p := NewProxy(ProxyOptions{})
	front := httptest.NewServer(p)
	defer front.Close()
	a, b := replica(t, "v1", false), replica(t, "v1", false)
	dead := deadReplica(t, "v1")
	if err := p.SetRoutes(Routes{Stable: []Backend{a, dead, b}}); err != nil {
		t.Fatal(err)
	}
	// Every GET succeeds though a third of them are first routed to the
	// killed replica; the measurements count no error.
	for i := range 300 {
		if code, body := get(t, front.URL+"/x"); code != 200 || body != "v1" {
			t.Fatalf("GET %d: %d %q", i, code, body)
		}
	}
	if w := p.Recorder().Cut("w1"); w.Total.Requests != 300 || w.Total.Errors != 0 {
		t.Errorf("GETs measured %+v", w.Total)
	}
	// A POST with an Idempotency-Key is retried too.
	req, _ := http.NewRequest(http.MethodPost, front.URL+"/v1/predict", nil)
	req.Header.Set("Idempotency-Key", "k1")
	for range 3 {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("POST with Idempotency-Key: %d", resp.StatusCode)
		}
	}
}

func TestProxyDoesNotRetryNonIdempotent(t *testing.T) {
	p := NewProxy(ProxyOptions{})
	front := httptest.NewServer(p)
	defer front.Close()
	dead := deadReplica(t, "v1")
	if err := p.SetRoutes(Routes{Stable: []Backend{dead}}); err != nil {
		t.Fatal(err)
	}
	// A POST with a body goes to the one replica and fails: never resent.
	resp, err := http.Post(front.URL+"/v1/predict", "application/json", strings.NewReader(`{"text":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("POST to a killed replica: %d", resp.StatusCode)
	}
	// A GET with no other replica left fails after trying the only one.
	if code, _ := get(t, front.URL+"/x"); code != http.StatusBadGateway {
		t.Fatalf("GET with every replica refusing: %d", code)
	}
	if w := p.Recorder().Cut("w1"); w.Total.Requests != 2 || w.Total.Errors != 2 || w.Unrouted != 0 {
		t.Errorf("measured %+v unrouted %d", w.Total, w.Unrouted)
	}
}

func TestProxyAvoidsRefusingReplica(t *testing.T) {
	p := NewProxy(ProxyOptions{})
	front := httptest.NewServer(p)
	defer front.Close()
	a := replica(t, "v1", false)
	dead := deadReplica(t, "v1")
	if err := p.SetRoutes(Routes{Stable: []Backend{dead, a}}); err != nil {
		t.Fatal(err)
	}
	// The first request refused marks the replica down: the POSTs after it
	// (which are never retried) go to the live one until the backoff ends.
	failed := 0
	for range 50 {
		resp, err := http.Post(front.URL+"/v1/predict", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			failed++
		}
	}
	if failed > 1 {
		t.Errorf("%d of 50 POSTs failed: the refusing replica was not avoided", failed)
	}
}
