package apiserver

import (
	"math"
	"sync"
	"time"
)

// Default per-token rate limit: a steady DefaultRate requests a second,
// bursts of DefaultBurst.
const (
	DefaultRate  = 10.0
	DefaultBurst = 20
)

// maxBuckets bounds the limiter's memory: past it, idle buckets (full
// again) are forgotten, which changes nothing for their callers.
const maxBuckets = 10000

// limiter is a token bucket per key (a token's ID, or the address of a
// caller without a valid token).
type limiter struct {
	rate, burst float64
	now         func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst int) *limiter {
	return &limiter{rate: rate, burst: float64(max(burst, 1)), now: time.Now, buckets: map[string]*bucket{}}
}

// allow takes one request from key's bucket. When the bucket is empty it
// reports false and how long until a request would be allowed.
func (l *limiter) allow(key string) (bool, time.Duration) {
	if l == nil || l.rate <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			l.forgetIdle(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return false, wait
}

// forgetIdle drops the buckets that have refilled completely.
func (l *limiter) forgetIdle(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}
