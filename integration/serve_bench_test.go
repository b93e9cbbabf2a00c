package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accordmesh/accord/services"
)

// TestServeBench (make bench-serve): requests/s and p50/p99 latency of
// POST /v1/predict through Accord's endpoint proxy (services.Proxy behind
// an http.Server on loopback, as services.Host runs it) against the same
// two replicas hit directly (the client round-robins over them), in the
// same run, alternating direct and proxied phases. The replicas are the
// example model server (examples/images/server) built from source and run
// as plain processes on loopback: the proxy's overhead is the point, and a
// replica on containerd in a CNI namespace adds the same veth hop to both
// paths. Two scenarios: the server answering at once (the proxy's absolute
// cost) and with SERVE_BENCH_DELAY of model time per prediction (default
// 2ms); each prints the overhead ratio at p50 against the 10 % target.
func TestServeBench(t *testing.T) {
	secs, _ := strconv.Atoi(os.Getenv("ACCORD_BENCH_SERVE_SECONDS"))
	if secs <= 0 {
		t.Skip("benchmark: set ACCORD_BENCH_SERVE_SECONDS (make bench-serve)")
	}
	conc := envInt("ACCORD_BENCH_SERVE_CONCURRENCY", 8)
	delay, err := time.ParseDuration(envOr("ACCORD_BENCH_SERVE_DELAY", "2ms"))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "server")
	build := exec.Command("go", "build", "-o", bin, "./examples/images/server")
	build.Dir = repoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the example server: %v\n%s", err, out)
	}
	for _, d := range []time.Duration{0, delay} {
		replicas := []string{startServer(t, bin, d), startServer(t, bin, d)}
		p := services.NewProxy(services.ProxyOptions{})
		if err := p.SetRoutes(services.Routes{Stable: []services.Backend{
			{ID: "a", Addr: replicas[0], Version: "1"}, {ID: "b", Addr: replicas[1], Version: "1"}}}); err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		endpoint := []string{ln.Addr().String()}
		phase := time.Duration(secs) * time.Second / 4
		var direct, proxied benchRun
		for range 2 { // alternate, so drift hits both alike
			direct.add(load(t, replicas, conc, phase))
			proxied.add(load(t, endpoint, conc, phase))
		}
		srv.Close()
		direct.print("direct", d)
		proxied.print("proxy ", d)
		over := float64(proxied.pct(50))/float64(direct.pct(50)) - 1
		verdict := "PASS"
		if over > 0.10 {
			verdict = "FAIL"
		}
		fmt.Printf("bench-serve: delay %-5s overhead p50 %+.1f %% (%+dµs), p99 %+.1f %%, rps ratio %.2f; target ≤ 10 %% at p50: %s\n",
			d, 100*over, (proxied.pct(50) - direct.pct(50)).Microseconds(),
			100*(float64(proxied.pct(99))/float64(direct.pct(99))-1), proxied.rps()/direct.rps(), verdict)
		if proxied.errors > 0 || direct.errors > 0 {
			t.Errorf("errors: direct %d, proxy %d", direct.errors, proxied.errors)
		}
	}
}

// benchRun accumulates one mode's requests.
type benchRun struct {
	lat     []time.Duration
	elapsed time.Duration
	errors  int64
}

func (b *benchRun) add(o benchRun) {
	b.lat = append(b.lat, o.lat...)
	b.elapsed += o.elapsed
	b.errors += o.errors
}

func (b *benchRun) rps() float64 { return float64(len(b.lat)) / b.elapsed.Seconds() }

func (b *benchRun) pct(p int) time.Duration {
	if len(b.lat) == 0 {
		return 0
	}
	slices.Sort(b.lat)
	return b.lat[min(len(b.lat)-1, len(b.lat)*p/100)]
}

func (b *benchRun) print(mode string, d time.Duration) {
	fmt.Printf("bench-serve: delay %-5s %s %8.0f req/s  p50 %8s  p99 %8s  (%d requests, %d errors)\n",
		d, mode, b.rps(), b.pct(50).Round(time.Microsecond), b.pct(99).Round(time.Microsecond), len(b.lat), b.errors)
}

// load runs conc clients for d, each posting predictions round-robin over
// targets on keep-alive connections.
func load(t *testing.T, targets []string, conc int, d time.Duration) benchRun {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxIdleConns: 4 * conc}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var out benchRun
	var n atomic.Uint64
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			var errs int64
			for ctx.Err() == nil {
				url := "http://" + targets[n.Add(1)%uint64(len(targets))] + "/v1/predict"
				t0 := time.Now()
				resp, err := cl.Post(url, "application/json", strings.NewReader(`{"text":"a great and reliable service"}`))
				if err == nil {
					io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
					resp.Body.Close()
				}
				if ctx.Err() != nil {
					break
				}
				if err != nil || resp.StatusCode != http.StatusOK {
					errs++
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			out.lat = append(out.lat, lat...)
			out.errors += errs
			mu.Unlock()
		}()
	}
	wg.Wait()
	out.elapsed = time.Since(start)
	return out
}

// startServer runs the example server on a free loopback port until the
// test ends (stopped by PID) and returns its address once it answers.
func startServer(t *testing.T, bin string, delay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "--listen", addr, "--delay", delay.String())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			return addr
		}
	}
	t.Fatalf("example server at %s never answered", addr)
	return ""
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
