package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api"
	"github.com/privalytics/privalytics/dp"
)

// TestQueryKeysSeeOnlyTheirOwnCharges: GET /v1/budget/charges with a query key
// lists that key's charges only — another key's fingerprints and times would
// say what it asked and when — while the admin key lists every charge.
func TestQueryKeysSeeOnlyTheirOwnCharges(t *testing.T) {
	t.Parallel()
	var meta privalytics.MetaStore
	f := newFixtureDeps(t, api.DefaultLimits(), func(d *api.Deps) { meta = d.Meta })
	keys := map[string]api.IssuedKey{}
	for _, name := range []string{"dashboard", "notebook"} {
		var k api.IssuedKey
		f.mustDo(t, http.MethodPost, "/v1/keys", f.admin, "application/json", nil, []byte(`{"name":"`+name+`","role":"query"}`), http.StatusCreated, &k)
		keys[name] = k
	}
	// Three charges of the dashboard, two of the notebook, recorded as the
	// query path records them.
	want := map[string][]string{}
	for i, name := range []string{"dashboard", "notebook", "dashboard", "notebook", "dashboard"} {
		c := &privalytics.Charge{TenantID: "shop", KeyID: keys[name].ID, Time: time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC),
			Fingerprint: name + string(rune('a'+i)), Mechanisms: "laplace count", Cost: privalytics.Cost{Epsilon: 0.01}}
		if _, err := meta.Charge(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		want[name] = append([]string{c.Fingerprint}, want[name]...) // newest first
		want["admin"] = append([]string{c.Fingerprint}, want["admin"]...)
	}
	tokens := map[string]string{"dashboard": keys["dashboard"].Token, "notebook": keys["notebook"].Token, "admin": f.admin}
	for who, token := range tokens {
		var got struct {
			Charges []privalytics.Charge `json:"charges"`
		}
		f.mustDo(t, http.MethodGet, "/v1/budget/charges", token, "", nil, nil, http.StatusOK, &got)
		var fps []string
		for _, c := range got.Charges {
			fps = append(fps, c.Fingerprint)
			if who != "admin" && c.KeyID != keys[who].ID {
				t.Errorf("%s sees a charge of key %s", who, c.KeyID)
			}
		}
		if diff := cmp.Diff(want[who], fps); diff != "" {
			t.Errorf("charges listed to %s (-want +got):\n%s", who, diff)
		}
	}
	// Paging applies within the key's own charges.
	var page struct {
		Charges []privalytics.Charge `json:"charges"`
	}
	f.mustDo(t, http.MethodGet, "/v1/budget/charges?offset=1&limit=1", tokens["notebook"], "", nil, nil, http.StatusOK, &page)
	if len(page.Charges) != 1 || page.Charges[0].Fingerprint != want["notebook"][1] {
		t.Errorf("second page of one of the notebook's charges: %+v, want %s", page.Charges, want["notebook"][1])
	}
}

// TestHugeEpsilonDoesNotBrickTheLedger reproduces issue 20, item 9 over HTTP:
// a query with ε 4,300 (ρ = ε²/2 past the ledger's integer units) used to
// leave the tenant's ledger unreadable, every later query and GET /v1/budget
// answering 500. Now it is refused with a 400 that says what to change, and
// the budget stays readable and spendable.
func TestHugeEpsilonDoesNotBrickTheLedger(t *testing.T) {
	t.Parallel()
	f := newFixtureWith(t, api.DefaultLimits(), dp.Secure(), `{"id":"shop","period":"lifetime","budget":{"epsilon":1000000}}`)
	var k api.IssuedKey
	f.mustDo(t, http.MethodPost, "/v1/keys", f.admin, "application/json", nil, []byte(`{"name":"pos","role":"ingest"}`), http.StatusCreated, &k)
	f.mustDo(t, http.MethodPost, "/v1/events", k.Token, "application/x-ndjson", nil,
		[]byte(`{"customer_id":"c1","ts":"2025-03-01T10:00:00Z","type":"purchase","amount":"5"}`+"\n"), http.StatusOK, nil)
	query := func(eps string) (int, api.ErrorBody) {
		status, eb, _ := f.do(t, http.MethodPost, "/v1/queries", f.admin, "application/json", nil, []byte(`{"aggregates":[{"op":"count"}],"bounds":{"max_groups":1},"epsilon":`+eps+`}`)) // fixed bounds: a tuned count splits ε, so its ρ reaches the ledger's limit at a larger ε
		return status, eb
	}
	if status, eb := query("4290"); status != http.StatusOK {
		t.Fatalf("ε 4290: status %d (%s: %s), want 200", status, eb.Error.Code, eb.Error.Message)
	}
	status, eb := query("4300")
	if status != http.StatusBadRequest || eb.Error.Code != privalytics.EINVALID || !strings.Contains(eb.Error.Message, "epsilon below") {
		t.Errorf("ε 4300: status %d (%s: %s), want 400 saying which epsilon to use", status, eb.Error.Code, eb.Error.Message)
	}
	for _, eps := range []string{"1", "2", "3"} { // repeats would be answered from the cache
		if status, eb := query(eps); status != http.StatusOK {
			t.Fatalf("ε %s after the refusal: status %d (%s: %s), want 200", eps, status, eb.Error.Code, eb.Error.Message)
		}
	}
	var b api.BudgetResponse
	f.mustDo(t, http.MethodGet, "/v1/budget", f.admin, "", nil, nil, http.StatusOK, &b)
	if b.Spent.Epsilon != 4296 {
		t.Errorf("spent ε %v, want 4296 (4290 + 1 + 2 + 3; the refused query is not charged)", b.Spent.Epsilon)
	}
}
