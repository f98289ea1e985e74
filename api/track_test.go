package api_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api"
)

// trackFixture is a server with a track key for origin shopOrigin.
func trackFixture(t *testing.T, lim api.Limits) (*fixture, privalytics.EventStore, string) {
	t.Helper()
	var store privalytics.EventStore
	f := newFixtureDeps(t, lim, func(d *api.Deps) { store = d.Events })
	var k api.IssuedKey
	f.mustDo(t, http.MethodPost, "/v1/keys", f.admin, "application/json", nil,
		[]byte(`{"name":"http://shop.test:80  https://WWW.Shop.test:443","role":"track"}`), http.StatusCreated, &k)
	if k.Name != "http://shop.test https://www.shop.test" {
		t.Errorf("stored origins %q, want them normalised", k.Name)
	}
	return f, store, k.Token
}

const shopOrigin = "http://shop.test"

func storedRows(t *testing.T, store privalytics.EventStore) int {
	t.Helper()
	snap, err := store.Snapshot(context.Background(), "shop", privalytics.DefaultRetailSchema())
	if err != nil {
		t.Fatal(err)
	}
	return snap.Rows()
}

// TestTrackEndpoint: a publishable key sends single events from its origins
// only, and can do nothing else.
func TestTrackEndpoint(t *testing.T) {
	t.Parallel()
	f, store, key := trackFixture(t, api.Limits{})
	event := []byte(`{"customer_id":"c1","ts":"2026-12-01T10:00:00Z","type":"view","channel":"web","product":"SKU-1"}`)
	origin := map[string]string{"Origin": shopOrigin}

	status, _, _ := f.do(t, http.MethodPost, "/v1/track?key="+key, key[:0], "text/plain;charset=UTF-8", origin, event)
	if status != http.StatusNoContent {
		t.Fatalf("event: status %d, want 204", status)
	}
	if n := storedRows(t, store); n != 1 {
		t.Errorf("stored %d rows, want 1", n)
	}
	var ingestKey api.IssuedKey
	f.mustDo(t, http.MethodPost, "/v1/keys", f.admin, "application/json", nil, []byte(`{"name":"pos","role":"ingest"}`), http.StatusCreated, &ingestKey)
	tests := []struct {
		name   string
		url    string
		hdr    map[string]string
		body   string
		status int
		code   string
		says   string
	}{
		{"origin not listed", "/v1/track?key=" + key, map[string]string{"Origin": "https://evil.test"}, string(event), 403, privalytics.EFORBIDDEN, "accepts events from http://shop.test, https://www.shop.test only"},
		{"no origin", "/v1/track?key=" + key, nil, string(event), 403, privalytics.EFORBIDDEN, `not from origin ""`},
		{"no key", "/v1/track", origin, string(event), 401, privalytics.EUNAUTHORIZED, "?key="},
		{"forged key", "/v1/track?key=" + key[:len(key)-2] + "xx", origin, string(event), 401, privalytics.EUNAUTHORIZED, "track key"},
		{"secret key in a page", "/v1/track?key=" + ingestKey.Token, origin, string(event), 403, privalytics.EFORBIDDEN, "must stay secret"},
		{"bad event", "/v1/track?key=" + key, origin, `{"customer_id":"c1","ts":"yesterday","type":"view"}`, 400, privalytics.EINVALID, `field "ts"`},
		{"two events", "/v1/track?key=" + key, origin, string(event) + "\n" + string(event), 400, privalytics.EINVALID, "one event per request"},
		{"not an object", "/v1/track?key=" + key, origin, `[` + string(event) + `]`, 400, privalytics.EINVALID, "one event as a JSON object"},
		{"too large", "/v1/track?key=" + key, origin, `{"customer_id":"` + strings.Repeat("x", 9000) + `"}`, 413, privalytics.ETOOLARGE, "at most 8192 bytes"},
	}
	for _, tt := range tests {
		status, eb, _ := f.do(t, http.MethodPost, tt.url, "", "text/plain", tt.hdr, []byte(tt.body))
		if status != tt.status || eb.Error.Code != tt.code || !strings.Contains(eb.Error.Message, tt.says) {
			t.Errorf("%s: %d %s %q, want %d %s saying %q", tt.name, status, eb.Error.Code, eb.Error.Message, tt.status, tt.code, tt.says)
		}
	}
	if n := storedRows(t, store); n != 1 {
		t.Errorf("after refused requests: %d rows stored, want still 1", n)
	}
	// The publishable key opens nothing else.
	for _, path := range []string{"/v1/events", "/v1/imports", "/v1/queries"} {
		if status, _, _ := f.do(t, http.MethodPost, path, key, "application/json", nil, event); status != http.StatusForbidden {
			t.Errorf("track key on %s: status %d, want 403", path, status)
		}
	}
	// Bad origin lists are refused when the key is made.
	if status, eb, _ := f.do(t, http.MethodPost, "/v1/keys", f.admin, "application/json", nil, []byte(`{"name":"shop.test/path","role":"track"}`)); status != 400 || !strings.Contains(eb.Error.Message, `"shop.test/path" is not an origin`) {
		t.Errorf("bad origin list: %d %q", status, eb.Error.Message)
	}
	// CORS: the script and the preflight.
	if status, _, body := f.do(t, http.MethodGet, "/track.js", "", "", nil, nil); status != 200 || !strings.Contains(string(body), "sendBeacon") {
		t.Errorf("track.js: %d", status)
	}
	req, _ := http.NewRequest(http.MethodOptions, f.srv.URL+"/v1/track?key="+key, nil)
	req.Header.Set("Origin", shopOrigin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != shopOrigin {
		t.Errorf("preflight: %d, allow-origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}

// TestTrackRateLimits: each key and each origin has its own budget of requests.
func TestTrackRateLimits(t *testing.T) {
	t.Parallel()
	lim := api.DefaultLimits()
	lim.RatePerKey = 0
	lim.Track = api.TrackLimits{PerKeyRate: 0.001, PerKeyBurst: 3, PerOriginRate: 0.001, PerOriginBurst: 2}
	f, store, key := trackFixture(t, lim)
	event := []byte(`{"customer_id":"c1","ts":"2026-12-01T10:00:00Z","type":"view"}`)
	var got []int
	for _, o := range []string{"http://shop.test", "http://shop.test", "http://shop.test", "https://www.shop.test", "https://www.shop.test"} {
		status, eb, _ := f.do(t, http.MethodPost, "/v1/track?key="+key, "", "text/plain", map[string]string{"Origin": o}, event)
		got = append(got, status)
		if status == 429 && eb.Error.Code != privalytics.ERATELIMIT {
			t.Errorf("429 with code %s", eb.Error.Code)
		}
	}
	// Origin 1 spends its 2, is refused the 3rd; origin 2's first spends the
	// key's 3rd token; then the key is out.
	want := []int{204, 204, 429, 204, 429}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("statuses %v, want %v", got, want)
		}
	}
	if n := storedRows(t, store); n != 3 {
		t.Errorf("stored %d rows, want 3", n)
	}
}

// TestTrackGroupCommit: many concurrent single events are all stored, once each.
func TestTrackGroupCommit(t *testing.T) {
	t.Parallel()
	f, store, key := trackFixture(t, api.Limits{})
	const senders, each = 16, 25
	var wg sync.WaitGroup
	errs := make(chan string, senders*each)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				body := `{"customer_id":"c` + string(rune('a'+s)) + `","ts":"2026-12-01T10:00:00Z","type":"view","quantity":` + strconv.Itoa(i) + `}`
				req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/v1/track?key="+key, strings.NewReader(body))
				req.Header.Set("Origin", shopOrigin)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err.Error()
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != 204 {
					errs <- resp.Status
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("request failed: %s", e)
	}
	if n := storedRows(t, store); n != senders*each {
		t.Errorf("stored %d rows, want %d", n, senders*each)
	}
}
