package api_test

import (
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/privalytics/privalytics/api"
)

// TestTrackThroughput sends single events through /v1/track from 64 senders on
// kept-alive connections, each event durable (fsynced, group commit) before its
// 204, and logs the requests a second; it checks that every event is stored
// once. PRIVALYTICS_TRACK_REQUESTS sets the number (default 3,000); the figure
// in the README comes from
//
//	PRIVALYTICS_TRACK_REQUESTS=100000 go test ./api -run TestTrackThroughput -count=1 -v
func TestTrackThroughput(t *testing.T) {
	n := 3_000
	if s := os.Getenv("PRIVALYTICS_TRACK_REQUESTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			t.Fatalf("PRIVALYTICS_TRACK_REQUESTS=%q: want a positive number", s)
		}
	}
	lim := api.DefaultLimits()
	lim.RatePerKey = 0
	f, store, key := trackFixture(t, lim)
	senders := 64
	if s := os.Getenv("PRIVALYTICS_TRACK_SENDERS"); s != "" {
		var err error
		if senders, err = strconv.Atoi(s); err != nil || senders <= 0 {
			t.Fatalf("PRIVALYTICS_TRACK_SENDERS=%q: want a positive number", s)
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders, MaxConnsPerHost: senders}}
	url := f.srv.URL + "/v1/track?key=" + key
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	cpu0, start := cpuSeconds(), time.Now()
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				body := `{"customer_id":"c` + strconv.FormatInt(i%5000, 10) + `","ts":"2026-12-01T10:00:00Z","type":"view","channel":"web","product":"SKU-` + strconv.FormatInt(i%300, 10) + `"}`
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
				req.Header.Set("Origin", shopOrigin)
				req.Header.Set("Content-Type", "text/plain")
				resp, err := client.Do(req)
				if err != nil || resp.StatusCode != http.StatusNoContent {
					failed.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), cpuSeconds()-cpu0
	if failed.Load() > 0 {
		t.Fatalf("%d of %d requests failed", failed.Load(), n)
	}
	if got := storedRows(t, store); got != n {
		t.Fatalf("stored %d rows, want %d", got, n)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("%d durable single events from %d senders in %.2fs: %.0f requests/s, %.0f per CPU-second of the process, senders included (load average %s)",
		n, senders, elapsed.Seconds(), float64(n)/elapsed.Seconds(), float64(n)/cpu, strings.Join(strings.Fields(string(load))[:3], " "))
}
