package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
)

// TrackOptions size the tracking section: single events sent to /v1/track
// as a shop's web pages send them, one request each.
type TrackOptions struct {
	Requests int // events sent, one request each
	Senders  int // concurrent connections (browsers at once)
}

// DefaultTrackOptions are the README's: 60,000 events from 64 senders.
func DefaultTrackOptions() TrackOptions { return TrackOptions{Requests: 60_000, Senders: 64} }

// trackOrigin is the shop the benchmark's track key accepts events from.
const trackOrigin = "https://shop.bench.test"

// RunTrack starts a server with serve's defaults (the per-key and per-origin
// rate limits included) and prints the tracking figures.
func RunTrack(ctx context.Context, out io.Writer, start StartFunc, opt TrackOptions) error {
	app, stop, err := start(ctx, "privalytics-bench-track-", ServerOptions{})
	if err != nil {
		return err
	}
	defer stop()
	rows, err := benchTrack(ctx, out, app, client.New(app.URL(), app.OperatorKey()), opt)
	if err != nil {
		return err
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tmeasured\ttarget\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.figure, r.measured, r.target, r.verdict)
	}
	return tw.Flush()
}

// benchTrack sends opt.Requests single events to /v1/track of a tenant of
// its own from opt.Senders connections, each durable before its 204 (group
// commit), checks every one was stored, and — in the same process, on the
// same server and connections — as many GET /healthz, the loopback HTTP
// ceiling the tracking rate is a share of.
func benchTrack(ctx context.Context, out io.Writer, app Server, op *client.Client, opt TrackOptions) ([]benchRow, error) {
	admin, _, err := benchTenant(ctx, op, "track")
	if err != nil {
		return nil, err
	}
	key, err := admin.CreateKey(ctx, trackOrigin, wire.RoleTrack)
	if err != nil {
		return nil, fmt.Errorf("track key: %w", err)
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: opt.Senders, MaxConnsPerHost: opt.Senders}}
	defer hc.CloseIdleConnections()
	fmt.Fprintf(out, "tracking: %d single events to /v1/track from %d senders, then as many GET /healthz …\n", opt.Requests, opt.Senders)
	track, err := hammer(ctx, hc, opt, func(i int) (*http.Request, error) {
		body := `{"customer_id":"v` + strconv.Itoa(i%5000) + `","ts":"2026-12-01T10:00:00Z","type":"view","channel":"web","product":"SKU-` + strconv.Itoa(i%300) + `"}`
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, app.URL()+"/v1/track?key="+key.Token, strings.NewReader(body))
		if err == nil {
			req.Header.Set("Origin", trackOrigin)
			req.Header.Set("Content-Type", "text/plain")
		}
		return req, err
	}, http.StatusNoContent)
	if err != nil {
		return nil, err
	}
	tenant, err := app.Meta().Tenant(ctx, "track")
	if err != nil {
		return nil, err
	}
	snap, err := app.Events().Snapshot(ctx, "track", tenant.Schema)
	if err != nil {
		return nil, err
	}
	if snap.Rows() != opt.Requests {
		return nil, fmt.Errorf("tracking: %d events acknowledged, %d stored", opt.Requests, snap.Rows())
	}
	floor, err := hammer(ctx, hc, opt, func(int) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, app.URL()+"/healthz", nil)
	}, http.StatusOK)
	if err != nil {
		return nil, err
	}
	trackRate, floorRate := float64(opt.Requests)/track.Seconds(), float64(opt.Requests)/floor.Seconds()
	return []benchRow{
		{fmt.Sprintf("single events through /v1/track, durable (group commit), %d senders", opt.Senders), fmtRate(trackRate, "requests/s"), "≥ 20,000 requests/s", verdict(trackRate >= 20_000)},
		{"  GET /healthz, same server and senders (loopback HTTP ceiling)", fmtRate(floorRate, "requests/s"), "", ""},
		{"  tracking ÷ ceiling", fmt.Sprintf("%.2f", trackRate/floorRate), "", ""},
	}, nil
}

// hammer sends opt.Requests requests made by mk from opt.Senders goroutines
// and returns the time they took; any status other than want is an error.
func hammer(ctx context.Context, hc *http.Client, opt TrackOptions, mk func(i int) (*http.Request, error), want int) (time.Duration, error) {
	var next atomic.Int64
	var first atomic.Value
	fail := func(err error) { first.CompareAndSwap(nil, err) }
	var wg sync.WaitGroup
	began := time.Now()
	for range opt.Senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for first.Load() == nil && ctx.Err() == nil {
				i := int(next.Add(1))
				if i > opt.Requests {
					return
				}
				req, err := mk(i)
				if err != nil {
					fail(err)
					return
				}
				resp, err := hc.Do(req)
				if err != nil {
					fail(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					fail(fmt.Errorf("%s %s: status %d, want %d", req.Method, req.URL.Path, resp.StatusCode, want))
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := first.Load().(error); err != nil {
		return 0, err
	}
	return time.Since(began), ctx.Err()
}
