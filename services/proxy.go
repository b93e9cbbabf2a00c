package services

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Backend is one ready replica the proxy may send requests to.
type Backend struct {
	ID      string `json:"id"`
	Addr    string `json:"addr"` // host:port, reachable from the proxy
	Version string `json:"version"`
}

// Routes is the traffic split: Canary takes CanaryPercent of the requests
// (round-robin among its backends), Stable the rest. With no canary
// backends every request goes to Stable; with no stable backends every
// request goes to the canary.
type Routes struct {
	Stable        []Backend `json:"stable"`
	Canary        []Backend `json:"canary,omitempty"`
	CanaryPercent int       `json:"canary_percent,omitempty"`
}

// Validate rejects routes the proxy cannot use.
func (r Routes) Validate() error {
	if r.CanaryPercent < 0 || r.CanaryPercent > 100 {
		return fmt.Errorf("%w: canary percent %d", ErrInvalid, r.CanaryPercent)
	}
	for _, b := range append(append([]Backend{}, r.Stable...), r.Canary...) {
		if _, _, err := net.SplitHostPort(b.Addr); err != nil || b.ID == "" {
			return fmt.Errorf("%w: backend %q at %q", ErrInvalid, b.ID, b.Addr)
		}
	}
	return nil
}

type backend struct {
	Backend
	rp *httputil.ReverseProxy
	// downUntil (unix ns): the replica refused a connection; other
	// backends are preferred until then (until the next probe takes it
	// out of the routes, or it answers again).
	downUntil atomic.Int64
}

// A refused connection costs an idempotent request nothing: it is sent to
// another ready replica (at most maxRetries times), and the refusing
// replica is avoided for refusedBackoff.
const (
	maxRetries     = 2
	refusedBackoff = time.Second
)

// retryable reports whether r may be sent again after a refused
// connection: an idempotent method (RFC 9110: GET, HEAD, OPTIONS, TRACE,
// PUT, DELETE) or an Idempotency-Key header (as net/http's Transport
// treats it), and no body (a refused connection sent nothing, but a body
// could not be read twice).
func retryable(r *http.Request) bool {
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		return false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return r.Header.Get("Idempotency-Key") != "" || r.Header.Get("X-Idempotency-Key") != ""
}

// refused reports whether err is a connection the replica refused.
func refused(err error) bool {
	var op *net.OpError
	return errors.Is(err, syscall.ECONNREFUSED) || (errors.As(err, &op) && op.Op == "dial" && errors.Is(op.Err, syscall.ECONNREFUSED))
}

type table struct {
	stable, canary []*backend
	percent        uint64
}

// Proxy is one endpoint's reverse proxy. It is an http.Handler; routes
// change atomically under traffic.
type Proxy struct {
	transport http.RoundTripper
	rec       *Recorder
	streams   sync.Map // stream name → *Recorder, besides rec
	nstreams  atomic.Int32
	tab       atomic.Pointer[table]
	n         atomic.Uint64 // request counter: the split and round-robin
	mu        sync.Mutex    // serialises SetRoutes
	cache     map[string]*backend
}

// ProxyOptions configure NewProxy.
type ProxyOptions struct {
	// Transport defaults to a clone of http.DefaultTransport with more idle
	// connections per host.
	Transport http.RoundTripper
	Recorder  *Recorder // default NewRecorder(nil)
}

// NewProxy returns a proxy with no routes (every request answers 503).
func NewProxy(o ProxyOptions) *Proxy {
	if o.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 256
		t.MaxIdleConns = 1024
		t.IdleConnTimeout = 90 * time.Second
		t.ResponseHeaderTimeout = time.Minute
		o.Transport = t
	}
	if o.Recorder == nil {
		o.Recorder = NewRecorder(nil)
	}
	p := &Proxy{transport: o.Transport, rec: o.Recorder, cache: map[string]*backend{}}
	p.tab.Store(&table{})
	return p
}

// Recorder is where the proxy records its measurements.
func (p *Proxy) Recorder() *Recorder { return p.rec }

// maxStreams bounds the named recorders of one proxy.
const maxStreams = 8

// Stream returns the recorder named name, started on first use: one
// window sequence per purpose (the SLA's windows, a rollout's canary
// windows) over the same requests. Stream("") is Recorder().
func (p *Proxy) Stream(name string) (*Recorder, error) {
	if name == "" {
		return p.rec, nil
	}
	if r, ok := p.streams.Load(name); ok {
		return r.(*Recorder), nil
	}
	if p.nstreams.Add(1) > maxStreams {
		p.nstreams.Add(-1)
		return nil, fmt.Errorf("%w: more than %d measurement streams", ErrInvalid, maxStreams)
	}
	r, loaded := p.streams.LoadOrStore(name, NewRecorder(p.rec.now))
	if loaded {
		p.nstreams.Add(-1)
	}
	return r.(*Recorder), nil
}

// record adds a request to every stream.
func (p *Proxy) record(version string, d time.Duration, failed, unrouted bool) {
	each := func(r *Recorder) {
		if unrouted {
			r.Unrouted(d)
		} else {
			r.Record(version, d, failed)
		}
	}
	each(p.rec)
	p.streams.Range(func(_, v any) bool { each(v.(*Recorder)); return true })
}

// SetRoutes replaces the traffic split.
func (p *Proxy) SetRoutes(r Routes) error {
	if err := r.Validate(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	keep := map[string]*backend{}
	mk := func(bs []Backend) []*backend {
		out := make([]*backend, 0, len(bs))
		for _, b := range bs {
			key := b.ID + "\x00" + b.Addr + "\x00" + b.Version
			be := p.cache[key]
			if be == nil {
				be = p.newBackend(b)
			}
			keep[key] = be
			out = append(out, be)
		}
		return out
	}
	t := &table{stable: mk(r.Stable), canary: mk(r.Canary), percent: uint64(r.CanaryPercent)}
	p.cache = keep
	p.tab.Store(t)
	return nil
}

// Routes returns the current split.
func (p *Proxy) Routes() Routes {
	t := p.tab.Load()
	r := Routes{CanaryPercent: int(t.percent)}
	for _, b := range t.stable {
		r.Stable = append(r.Stable, b.Backend)
	}
	for _, b := range t.canary {
		r.Canary = append(r.Canary, b.Backend)
	}
	return r
}

type ctxKey struct{}

// failure is set by the error handler so the recorder counts a request
// the replica never answered. When retry is set and the replica refused
// the connection, the handler writes nothing and sets refused: the proxy
// tries another replica.
type failure struct {
	failed, retry, refused bool
}

func (p *Proxy) newBackend(b Backend) *backend {
	target := &url.URL{Scheme: "http", Host: b.Addr}
	be := &backend{Backend: b}
	be.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		Transport:  p.transport,
		BufferPool: copyBuffers,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			f, _ := r.Context().Value(ctxKey{}).(*failure)
			if f != nil {
				f.failed = true
			}
			if refused(err) {
				be.downUntil.Store(time.Now().Add(refusedBackoff).UnixNano())
				if f != nil && f.retry {
					f.refused = true
					return
				}
			}
			if errors.Is(err, context.Canceled) {
				w.WriteHeader(499)
				return
			}
			http.Error(w, "replica unavailable", http.StatusBadGateway)
		},
	}
	return be
}

// copyBuffers recycles the proxies' 32 KiB copy buffers (without a pool
// httputil.ReverseProxy allocates one per request).
var copyBuffers = &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte  { return *b.p.Get().(*[]byte) }
func (b *bufferPool) Put(v []byte) { b.p.Put(&v) }

// pick chooses the backend for request number n: the first CanaryPercent
// of every hundred requests go to the canary, round-robin within each
// pool, skipping a backend that refused a connection lately while another
// is up. A retry (tried not empty) takes another backend of the same
// pool, then of the other; nil when none is left.
func (t *table) pick(n uint64, now int64, tried []*backend) *backend {
	first, second := t.stable, t.canary
	if len(t.canary) > 0 && (len(t.stable) == 0 || n%100 < t.percent) {
		first, second = t.canary, t.stable
	}
	if b := choose(first, n, now, tried); b != nil || len(tried) == 0 {
		return b
	}
	return choose(second, n, now, tried)
}

// choose returns pool's n-th backend, or the next one up and not tried; a
// backend marked down when every untried one is.
func choose(pool []*backend, n uint64, now int64, tried []*backend) *backend {
	if len(pool) == 0 {
		return nil
	}
	if b := pool[n%uint64(len(pool))]; len(tried) == 0 && b.downUntil.Load() <= now {
		return b // the common case: no allocation, no scan
	}
	var down *backend
	for i := range uint64(len(pool)) {
		b := pool[(n+i)%uint64(len(pool))]
		switch {
		case slices.Contains(tried, b):
		case b.downUntil.Load() <= now:
			return b
		case down == nil:
			down = b
		}
	}
	return down
}

// statusWriter remembers the status code the replica answered.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ServeHTTP implements http.Handler. An idempotent request (retryable)
// whose replica refuses the connection is sent to another ready replica.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	t := p.tab.Load()
	n := p.n.Add(1) - 1
	retry := retryable(r)
	var tried []*backend
	for {
		b := t.pick(n, start.UnixNano(), tried)
		if b == nil {
			if len(tried) == 0 {
				p.record("", time.Since(start), true, true)
				http.Error(w, ErrNoReplica.Error(), http.StatusServiceUnavailable)
				return
			}
			// Every replica refused.
			p.record(tried[len(tried)-1].Version, time.Since(start), true, false)
			http.Error(w, "replica unavailable", http.StatusBadGateway)
			return
		}
		f := &failure{retry: retry && len(tried) < maxRetries}
		sw := &statusWriter{ResponseWriter: w}
		b.rp.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), ctxKey{}, f)))
		if f.refused {
			tried = append(tried, b)
			continue
		}
		p.record(b.Version, time.Since(start), f.failed || sw.code >= 500, false)
		return
	}
}
