package services

import (
	"math"
	"sync"
	"time"
)

// histBuckets is the number of latency buckets: bucket i holds latencies
// whose microseconds v satisfy floor(ln(v+1)*histScale) == i, a relative
// resolution of about 2 % up to hours.
const (
	histScale   = 50
	histBuckets = 1200
)

// histogram is a fixed-size log-bucketed latency histogram.
type histogram struct {
	counts [histBuckets]uint32
	n      uint64
}

func bucketOf(d time.Duration) int {
	us := float64(max(d, 0) / time.Microsecond)
	i := int(math.Log(us+1) * histScale)
	return min(i, histBuckets-1)
}

// upper is the largest latency bucket i holds.
func upper(i int) time.Duration {
	return time.Duration(math.Exp(float64(i+1)/histScale)-1) * time.Microsecond
}

func (h *histogram) add(d time.Duration) {
	h.counts[bucketOf(d)]++
	h.n++
}

// quantile is the upper bound of the bucket holding the q-th latency.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			return upper(i)
		}
	}
	return upper(histBuckets - 1)
}

// Stats are the measurements of one group of requests over one window.
type Stats struct {
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"` // answered 5xx, or not answered at all
	// SuccessBP is the share of requests without error in basis points
	// (10000 when there were no requests).
	SuccessBP int64         `json:"success_basis_points"`
	P50       time.Duration `json:"p50_ns"`
	P95       time.Duration `json:"p95_ns"`
	P99       time.Duration `json:"p99_ns"`
	Start     time.Time     `json:"start"`
	End       time.Time     `json:"end"`
}

// Window is a cut of the proxy's measurements: per version and overall.
type Window struct {
	Key       string           `json:"key"`
	Total     Stats            `json:"total"`
	Versions  map[string]Stats `json:"versions"`
	Unrouted  int64            `json:"unrouted"` // requests no ready replica could take
	Truncated bool             `json:"truncated,omitempty"`
}

// group accumulates one version's requests.
type group struct {
	requests, errors int64
	hist             histogram
}

func (g *group) stats(start, end time.Time) Stats {
	s := Stats{Requests: g.requests, Errors: g.errors, SuccessBP: 10000, Start: start, End: end}
	if g.requests > 0 {
		s.SuccessBP = (g.requests - g.errors) * 10000 / g.requests
		s.P50, s.P95, s.P99 = g.hist.quantile(0.50), g.hist.quantile(0.95), g.hist.quantile(0.99)
	}
	return s
}

// maxCuts bounds how many cut windows a recorder remembers for repeated
// (retried) cuts.
const maxCuts = 256

// maxVersions bounds the versions a recorder tracks in one window.
const maxVersions = 32

// Recorder measures requests into the current window until Cut closes it.
type Recorder struct {
	mu       sync.Mutex
	now      func() time.Time
	start    time.Time
	total    group
	versions map[string]*group
	unrouted int64
	cuts     map[string]Window
	order    []string
}

// NewRecorder starts a recorder; now may be nil (time.Now).
func NewRecorder(now func() time.Time) *Recorder {
	if now == nil {
		now = time.Now
	}
	return &Recorder{now: now, start: now(), versions: map[string]*group{}, cuts: map[string]Window{}}
}

// Record adds one request of version v.
func (r *Recorder) Record(v string, latency time.Duration, failed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.versions[v]
	if g == nil {
		if len(r.versions) >= maxVersions {
			v = "other"
			g = r.versions[v]
		}
		if g == nil {
			g = &group{}
			r.versions[v] = g
		}
	}
	for _, x := range []*group{&r.total, g} {
		x.requests++
		if failed {
			x.errors++
		}
		x.hist.add(latency)
	}
}

// Unrouted counts a request no replica could take (also a failed request).
func (r *Recorder) Unrouted(latency time.Duration) {
	r.mu.Lock()
	r.unrouted++
	r.total.requests++
	r.total.errors++
	r.total.hist.add(latency)
	r.mu.Unlock()
}

// Peek returns the current window without closing it.
func (r *Recorder) Peek() Window {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.window("", r.now())
}

func (r *Recorder) window(key string, end time.Time) Window {
	w := Window{Key: key, Total: r.total.stats(r.start, end), Versions: map[string]Stats{}, Unrouted: r.unrouted}
	for v, g := range r.versions {
		w.Versions[v] = g.stats(r.start, end)
	}
	return w
}

// Cut closes the current window under key and starts a new one. Cutting
// a key again returns the window first cut under it, so a retried
// activity neither loses nor double-counts a window.
func (r *Recorder) Cut(key string) Window {
	r.mu.Lock()
	defer r.mu.Unlock()
	if w, ok := r.cuts[key]; ok {
		return w
	}
	end := r.now()
	w := r.window(key, end)
	r.start, r.total, r.versions, r.unrouted = end, group{}, map[string]*group{}, 0
	r.cuts[key] = w
	r.order = append(r.order, key)
	if len(r.order) > maxCuts {
		delete(r.cuts, r.order[0])
		r.order = r.order[1:]
	}
	return w
}
