package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api"
)

// chromium finds the headless browser as the dashboard test does: the
// PRIVALYTICS_CHROMIUM path, else a chromium on PATH; without one the test
// skips saying how to get it, unless PRIVALYTICS_REQUIRE_BROWSER is set.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PRIVALYTICS_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "SKIPPED: no chromium on PATH: install Debian's chromium (apt-get install -y chromium) or set PRIVALYTICS_CHROMIUM"
	if os.Getenv("PRIVALYTICS_REQUIRE_BROWSER") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// TestTrackSnippetInBrowser loads a shop page (its own origin, 127.0.0.1 on
// another port) that uses the snippet in a real Chromium: the events of the
// purpose the visitor granted arrive and are stored, the one of the refused
// purpose and the one of an unanswered purpose are never sent, and nothing is
// left in the browser (no cookie, no storage).
func TestTrackSnippetInBrowser(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	var store privalytics.EventStore
	f := newFixtureDeps(t, api.Limits{}, func(d *api.Deps) { store = d.Events })

	var page []byte
	shop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	}))
	defer shop.Close()
	var k api.IssuedKey
	f.mustDo(t, http.MethodPost, "/v1/keys", f.admin, "application/json", nil, []byte(fmt.Sprintf(`{"name":%q,"role":"track"}`, shop.URL)), http.StatusCreated, &k)
	page = []byte(`<!doctype html><html><head><title>shop</title>
<script>
window.privalytics = {q: [
  ["consent", {analytics: true, marketing: false}],
  ["identify", "cust-42"],
  ["track", "view", {product: "SKU-1"}, {purpose: "analytics"}],
  ["track", "purchase", {product: "REFUSED"}, {purpose: "marketing"}],
  ["track", "view", {product: "UNANSWERED"}, {purpose: "personalisation"}],
  ["track", "add_to_cart", {product: "SKU-2", quantity: 2}, {purpose: "analytics"}]
]};
</script>
<script src="` + f.srv.URL + `/track.js" data-key="` + k.Token + `" async></script>
</head><body>shop</body></html>`)

	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(browser),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	browserCtx, closeBrowser := chromedp.NewContext(allocCtx)
	defer closeBrowser()
	ctx, cancel := context.WithTimeout(browserCtx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(shop.URL+"/")); err != nil {
		t.Fatalf("open the shop page: %v", err)
	}
	var state struct {
		Stats   struct{ Sent, Dropped int }
		Cookie  string
		Storage int
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](`window.privalytics.stats ? {stats: window.privalytics.stats(), cookie: document.cookie, storage: localStorage.length + sessionStorage.length} : null`))
		if err != nil {
			t.Fatalf("read the snippet's state: %v", err)
		}
		if string(raw) != "null" {
			if err := json.Unmarshal(raw, &state); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the snippet did not load within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if state.Stats.Sent != 2 || state.Stats.Dropped != 2 || state.Cookie != "" || state.Storage != 0 {
		t.Errorf("snippet state %+v, want 2 sent, 2 dropped, no cookie, nothing stored", state)
	}

	// The two granted events arrive (beacons are sent in the background).
	var got []string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got = trackedEvents(t, store)
		if len(got) >= 2 || time.Now().After(deadline) {
			break
		}
	}
	time.Sleep(500 * time.Millisecond) // room for a wrongly sent event to arrive too
	got = trackedEvents(t, store)
	want := []string{"add_to_cart SKU-2 web", "view SKU-1 web"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored events (-want +got):\n%s", diff)
	}
}

// trackedEvents lists the stored events as "type product channel", sorted.
func trackedEvents(t *testing.T, store privalytics.EventStore) []string {
	t.Helper()
	snap, err := store.Snapshot(context.Background(), "shop", privalytics.DefaultRetailSchema())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ch := range snap.Chunks {
		rec := ch.Record
		str := func(col string, i int) string {
			idx := rec.Schema().FieldIndices(col)[0]
			return cell(rec.Column(idx), i)
		}
		for i := range int(rec.NumRows()) {
			out = append(out, str("type", i)+" "+str("product", i)+" "+str("channel", i))
		}
	}
	sort.Strings(out)
	return out
}
