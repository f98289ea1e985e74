package api

import (
	"testing"
	"time"
)

// TestRateLimiter: a key gets its burst at once, then rate a second; a refusal
// says how long to wait and costs nothing; keys do not share buckets; idle
// full buckets are forgotten.
func TestRateLimiter(t *testing.T) {
	t.Parallel()
	if ok, _ := (*rateLimiter)(nil).allow("k", time.Now()); !ok {
		t.Fatal("no limit (rate 0) refused a request")
	}
	l := newRateLimiter(2, 3) // 2 a second, bursts of 3
	t0 := time.Unix(1_800_000_000, 0)
	for i := range 3 {
		if ok, _ := l.allow("a", t0); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, retry := l.allow("a", t0)
	if ok || retry <= 0 || retry > 500*time.Millisecond {
		t.Fatalf("4th request at once: ok %v retry %s, want refused with a wait of at most 0.5 s", ok, retry)
	}
	// Refusals spend nothing: many of them do not push the next token back.
	for range 10 {
		l.allow("a", t0)
	}
	if ok, _ := l.allow("a", t0.Add(retry)); !ok {
		t.Errorf("refused after waiting the Retry-After of %s", retry)
	}
	if ok, _ := l.allow("b", t0); !ok {
		t.Error("key b was limited by key a's requests")
	}
	// After a long idle time both buckets are full and swept.
	if ok, _ := l.allow("c", t0.Add(time.Hour)); !ok {
		t.Fatal("key c refused")
	}
	if _, held := l.buckets["a"]; held || len(l.buckets) != 1 {
		t.Errorf("after an hour idle the limiter still holds %d buckets (a held: %v), want only c", len(l.buckets), held)
	}
}
