package api

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// rateLimiter keeps one token bucket (golang.org/x/time/rate) per API key or
// origin: each earns rate tokens a second up to burst, and a request spends
// one. Buckets that have filled up again are dropped, so memory follows the
// active keys rather than every key ever seen.
type rateLimiter struct {
	rate  float64 // for the 429 message
	burst float64

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	swept   time.Time
}

func newRateLimiter(r float64, burst int) *rateLimiter {
	if r <= 0 {
		return nil
	}
	return &rateLimiter{rate: r, burst: math.Max(1, float64(burst)), buckets: map[string]*rate.Limiter{}}
}

// allow spends a token of key at now, or says how long until one is earned.
func (l *rateLimiter) allow(key string, now time.Time) (ok bool, retry time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// A bucket left alone this long is full again: forgetting it changes nothing.
	if full := time.Duration(l.burst / l.rate * float64(time.Second)); now.Sub(l.swept) > full {
		for k, b := range l.buckets {
			if b.TokensAt(now) >= l.burst {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b := l.buckets[key]
	if b == nil {
		b = rate.NewLimiter(rate.Limit(l.rate), int(l.burst))
		l.buckets[key] = b
	}
	// A reservation, unlike Allow, says how long the wait would be (for
	// Retry-After); a refused request must not keep its place in the queue.
	res := b.ReserveN(now, 1)
	if !res.OK() {
		return false, time.Second
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}
