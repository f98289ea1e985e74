package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
)

// flaky answers the first len(fail) requests with those statuses (and a
// Retry-After of retryAfter when not ""), then 200 with an ingest result;
// it records each request's arrival and body.
type flaky struct {
	fail       []int
	retryAfter string

	mu     sync.Mutex
	at     []time.Time
	bodies []string
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	n := len(f.at)
	f.at, f.bodies = append(f.at, time.Now()), append(f.bodies, string(body))
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if n < len(f.fail) {
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		code := wire.CodeRateLimited
		if f.fail[n] == http.StatusServiceUnavailable {
			code = wire.CodeUnavailable
		}
		w.WriteHeader(f.fail[n])
		_, _ = io.WriteString(w, `{"error":{"code":"`+code+`","message":"slow down","details":{"n":1}}}`)
		return
	}
	_, _ = io.WriteString(w, `{"rows":2,"duplicate":false}`)
}

func (f *flaky) requests() ([]time.Time, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.at...), append([]string(nil), f.bodies...)
}

func newFlaky(t *testing.T, f *flaky) string {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.URL
}

var fast = client.Retry{Attempts: 4, Base: time.Millisecond, Max: 2 * time.Second}

func TestRetriesHonourRetryAfterOn429And503(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		f := &flaky{fail: []int{status, status}, retryAfter: "1"}
		c := client.New(newFlaky(t, f), "pvk_test", client.WithRetry(fast))
		res, err := c.Ingest(context.Background(), []byte("{}\n{}\n"), client.IngestOptions{})
		if err != nil || res.Rows != 2 {
			t.Fatalf("status %d: %+v, %v; want the third try's answer", status, res, err)
		}
		at, bodies := f.requests()
		if len(at) != 3 {
			t.Fatalf("status %d: %d requests, want 3", status, len(at))
		}
		for i := 1; i < len(at); i++ {
			// Retry-After: 1 is one second; the backoff alone would be a few ms.
			if gap := at[i].Sub(at[i-1]); gap < 900*time.Millisecond {
				t.Errorf("status %d: try %d came %v after the previous, before the 1 s the server asked for", status, i+1, gap)
			}
			if bodies[i] != bodies[0] {
				t.Errorf("status %d: try %d sent %q, want the same body %q", status, i+1, bodies[i], bodies[0])
			}
		}
	}
}

func TestRetriesBackOffWithoutRetryAfterAndGiveUp(t *testing.T) {
	t.Parallel()
	f := &flaky{fail: []int{503, 503, 503, 503, 503}}
	c := client.New(newFlaky(t, f), "pvk_test", client.WithRetry(client.Retry{Attempts: 3, Base: 20 * time.Millisecond, Max: time.Second}))
	_, err := c.Ingest(context.Background(), []byte("{}\n"), client.IngestOptions{})
	var we *wire.Error
	if !errors.As(err, &we) || we.Status != 503 || we.Code != wire.CodeUnavailable || we.Message != "slow down" || we.Details["n"] != float64(1) {
		t.Fatalf("after the last try: %#v, want the server's 503 as a *wire.Error", err)
	}
	at, _ := f.requests()
	if len(at) != 3 {
		t.Fatalf("%d requests, want 3 (Attempts)", len(at))
	}
	// Waits are drawn from [d/2, d] with d = 20 ms, then 40 ms.
	if g1, g2 := at[1].Sub(at[0]), at[2].Sub(at[1]); g1 < 10*time.Millisecond || g2 < 20*time.Millisecond {
		t.Errorf("gaps %v, %v; want at least 10 ms, then 20 ms", g1, g2)
	}
}

func TestNoRetryWhenTheServerAsksForLongerThanMax(t *testing.T) {
	t.Parallel()
	f := &flaky{fail: []int{429, 429}, retryAfter: "3600"}
	c := client.New(newFlaky(t, f), "pvk_test", client.WithRetry(fast))
	start := time.Now()
	_, err := c.Ingest(context.Background(), []byte("{}\n"), client.IngestOptions{})
	if at, _ := f.requests(); len(at) != 1 || err == nil || time.Since(start) > time.Second {
		t.Fatalf("%d requests in %v, err %v; want one, returned at once", len(at), time.Since(start), err)
	}
}

func TestNoRetryOnOtherStatusesOrWhenTurnedOff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		status int
		retry  client.Retry
	}{
		{"400 is final", http.StatusBadRequest, fast},
		{"500 is final", http.StatusInternalServerError, fast},
		{"retries off", http.StatusTooManyRequests, client.Retry{}},
	} {
		f := &flaky{fail: []int{tc.status, tc.status}}
		c := client.New(newFlaky(t, f), "pvk_test", client.WithRetry(tc.retry))
		_, err := c.Ingest(context.Background(), []byte("{}\n"), client.IngestOptions{})
		if at, _ := f.requests(); len(at) != 1 || err == nil {
			t.Errorf("%s: %d requests, err %v; want one request and its error", tc.name, len(at), err)
		}
	}
}

func TestRetryWaitEndsWithTheContext(t *testing.T) {
	t.Parallel()
	f := &flaky{fail: []int{503, 503}, retryAfter: "1"}
	c := client.New(newFlaky(t, f), "pvk_test", client.WithRetry(fast))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Ingest(ctx, []byte("{}\n"), client.IngestOptions{})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 800*time.Millisecond {
		t.Fatalf("err %v after %v; want the deadline, well before the 1 s Retry-After", err, time.Since(start))
	}
}

// A streamed upload cannot be sent twice: Import returns the 503 at once.
func TestStreamedUploadIsNotRetried(t *testing.T) {
	t.Parallel()
	f := &flaky{fail: []int{503}}
	c := client.New(newFlaky(t, f), "pvk_test", client.WithRetry(fast))
	pr, pw := io.Pipe()
	go func() { _, _ = io.WriteString(pw, "a,b\n1,2\n"); pw.Close() }()
	if _, err := c.Import(context.Background(), pr, -1, client.ImportOptions{Format: "csv"}); err == nil {
		t.Fatal("Import of a streamed body succeeded after a 503; want the 503")
	}
	if at, _ := f.requests(); len(at) != 1 {
		t.Errorf("%d requests, want 1", len(at))
	}
}
