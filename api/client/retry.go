package client

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Retry is how the client retries an answer 429 (rate limited) or 503 (not
// ready, shutting down, overloaded). Both mean the server did not act on the
// request, so even a POST is safe to send again. The wait is the server's
// Retry-After when it gives one, else an exponential backoff from Base with
// jitter; a Retry-After longer than Max ends the retries, since sending
// earlier than the server asked would only be refused again.
type Retry struct {
	Attempts int           // tries in all, the first included; 1 or less: no retry
	Base     time.Duration // first backoff without Retry-After; doubles each try
	Max      time.Duration // longest single wait
}

// DefaultRetry tries four times, waiting about 0.2 s, 0.4 s, 0.8 s (or what
// the server asks, up to 30 s).
func DefaultRetry() Retry {
	return Retry{Attempts: 4, Base: 200 * time.Millisecond, Max: 30 * time.Second}
}

// roundTrip sends req and decodes a 2xx answer into out, retrying 429 and 503
// answers by c.retry when the body can be sent again (no body, or one that
// http.NewRequest can replay); a streamed upload is sent once.
func (c *Client) roundTrip(req *http.Request, out any) error {
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	for attempt := 1; ; attempt++ {
		err := c.once(req, out)
		var ae *apiError
		if err == nil || !replayable || attempt >= c.retry.Attempts || !errors.As(err, &ae) ||
			(ae.err.Status != http.StatusTooManyRequests && ae.err.Status != http.StatusServiceUnavailable) {
			return err
		}
		wait, ok := c.retry.wait(attempt, ae.retryAfter, time.Now())
		if !ok {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-req.Context().Done():
			t.Stop()
			return errors.Join(err, req.Context().Err())
		case <-t.C:
		}
		if req.GetBody != nil {
			next := req.Clone(req.Context())
			if next.Body, err = req.GetBody(); err != nil {
				return err
			}
			req = next
		}
	}
}

// wait is how long to wait before try attempt+1, and false when the server
// asked for longer than r.Max.
func (r Retry) wait(attempt int, retryAfter string, now time.Time) (time.Duration, bool) {
	if d, ok := parseRetryAfter(retryAfter, now); ok {
		return d, d <= r.Max
	}
	d := r.Base << (attempt - 1)
	if d <= 0 || d > r.Max {
		d = r.Max
	}
	// Jitter spreads the clients a busy server turned away at the same moment
	// (scheduling only: nothing here is privacy noise).
	return d/2 + rand.N(d/2+1), true
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
		// Past a century the product would wrap: it is "later than any Max".
		return time.Duration(min(s, 100*365*24*3600)) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
