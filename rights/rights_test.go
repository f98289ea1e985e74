package rights_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/ingest"
	"github.com/privalytics/privalytics/rights"
	"github.com/privalytics/privalytics/store/audit"
	"github.com/privalytics/privalytics/store/events"
	"github.com/privalytics/privalytics/store/sqlite"
)

// fixture is a rights service over real stores (SQLite, the event store and
// the audit log) in a temp dir, with a tenant "shop" holding twelve events of
// three customers, c0 … c2, four each, in January and February 2025.
type fixture struct {
	svc    *rights.Service
	tenant *privalytics.Tenant
	conv   *ingest.Converter
	pseudo *ingest.Pseudonymiser
	audit  *audit.Log
	events *events.Store
	now    time.Time

	mu     sync.Mutex
	erased []string
	purged []privalytics.PurgeReceipt
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir, ctx := t.TempDir(), context.Background()
	meta, err := sqlite.Open(ctx, filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := events.Open(filepath.Join(dir, "events"), events.Options{SealRows: 10_000, SyncWrites: true})
	if err != nil {
		t.Fatal(err)
	}
	al, err := audit.Open(filepath.Join(dir, audit.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ev.Close(); meta.Close(); al.Close() })
	f := &fixture{audit: al, events: ev, now: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)}
	f.tenant = &privalytics.Tenant{ID: "shop", Name: "Shop", Schema: privalytics.DefaultRetailSchema(), Budget: privalytics.Cost{Epsilon: 1},
		Purposes: []string{privalytics.DefaultPurpose}, CreatedAt: f.now, WrappedKey: []byte("unused: the test pseudonymises with its own key")}
	if err := meta.CreateTenant(ctx, f.tenant); err != nil {
		t.Fatal(err)
	}
	if f.pseudo, err = ingest.NewPseudonymiser(bytes.Repeat([]byte{7}, 32)); err != nil {
		t.Fatal(err)
	}
	if f.conv, err = ingest.NewConverter(f.tenant.Schema, f.pseudo, ingest.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := range 12 {
		fmt.Fprintf(&b, `{"customer_id":"c%d","ts":"2025-0%d-10T10:00:00Z","type":"purchase","amount":"1.500","country":"DE"}`+"\n", i%3, 1+i%2)
	}
	rec, err := f.conv.DecodeJSON([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ev.Append(ctx, "shop", f.tenant.Schema, privalytics.Batch{Record: rec}); err != nil {
		t.Fatal(err)
	}
	f.svc = rights.New(rights.Deps{Events: ev, Tenants: meta, Audit: al, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now: func() time.Time { return f.now },
		Hooks: rights.Hooks{
			Erased: func(_ context.Context, action string, r privalytics.ErasureReceipt) {
				f.mu.Lock()
				defer f.mu.Unlock()
				f.erased = append(f.erased, fmt.Sprintf("%s %d", action, r.Rows))
			},
			Purged: func(_ context.Context, r privalytics.PurgeReceipt) {
				f.mu.Lock()
				defer f.mu.Unlock()
				f.purged = append(f.purged, r)
			},
		}})
	t.Cleanup(func() { f.svc.Close() })
	return f
}

func (f *fixture) subject(id string) rights.Subject {
	return rights.Subject{Tenant: f.tenant, CustomerID: id, Pseudonym: f.pseudo.Subject([]byte(id))}
}

// actions are the audit trail's actions for the tenant, oldest first, with
// their actor and outcome; the test also checks that no entry names a customer.
func (f *fixture) actions(t *testing.T) []string {
	t.Helper()
	list, err := f.audit.Entries(context.Background(), "shop", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(list) - 1; i >= 0; i-- {
		e := list[i]
		raw, _ := json.Marshal(e)
		if strings.Contains(string(raw), `"c0"`) || strings.Contains(string(raw), `"c1"`) {
			t.Errorf("audit entry names a customer: %s", raw)
		}
		out = append(out, e.Actor+" "+e.Action+" "+e.Outcome)
	}
	return out
}

var admin = rights.Actor{KeyID: "key_admin", RequestID: "req-1"}

func TestExportIsCompleteOrderedAndAudited(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	exp, err := f.svc.Export(context.Background(), admin, f.subject("c1"))
	if err != nil {
		t.Fatal(err)
	}
	if exp.Rows != 4 || len(exp.Events) != 4 || exp.CustomerID != "c1" || exp.Tenant != "shop" {
		t.Fatalf("export: %+v", exp)
	}
	for i, ev := range exp.Events {
		if ev["customer_id"] != "c1" || ev["amount"] != json.Number("1.500") || ev["country"] != "DE" {
			t.Errorf("event %d: %v", i, ev)
		}
		if i > 0 && ev["ts"].(string) < exp.Events[i-1]["ts"].(string) {
			t.Errorf("events out of time order: %v before %v", exp.Events[i-1]["ts"], ev["ts"])
		}
	}
	var csv bytes.Buffer
	if err := exp.WriteCSV(&csv); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(csv.String()), "\n"); len(lines) != 5 || !strings.HasPrefix(lines[0], "customer_id,ts,type") || !strings.Contains(lines[1], "1.500") {
		t.Errorf("CSV export:\n%s", csv.String())
	}
	none, err := f.svc.Export(context.Background(), admin, f.subject("nobody"))
	if err != nil || none.Rows != 0 || len(none.Events) != 0 {
		t.Errorf("export of a customer without events: %+v, %v", none, err)
	}
	if got, want := f.actions(t), []string{"key_admin subject.export ok", "key_admin subject.export ok"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("audit = %q, want %q", got, want)
	}
}

func TestRectifyChecksLikeIngestAndAudits(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		fields map[string]json.RawMessage
		want   string
	}{
		{"no fields", nil, "name the fields"},
		{"the customer", map[string]json.RawMessage{"customer_id": json.RawMessage(`"x"`)}, "cannot be corrected"},
		{"the time", map[string]json.RawMessage{"ts": json.RawMessage(`"2025-01-01"`)}, "cannot be corrected"},
		{"undeclared", map[string]json.RawMessage{"email": json.RawMessage(`"a@b"`)}, "not in the tenant's schema"},
		{"bad value", map[string]json.RawMessage{"amount": json.RawMessage(`"lots"`)}, "amount"},
	} {
		_, err := f.svc.Rectify(ctx, admin, f.subject("c1"), f.conv, tc.fields)
		if privalytics.ErrorCode(err) != privalytics.EINVALID || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want invalid saying %q", tc.name, err, tc.want)
		}
	}
	if _, err := f.svc.Rectify(ctx, admin, f.subject("nobody"), f.conv, map[string]json.RawMessage{"country": json.RawMessage(`"FR"`)}); privalytics.ErrorCode(err) != privalytics.ENOTFOUND {
		t.Errorf("rectify a customer without events: %v, want not_found", err)
	}
	rc, err := f.svc.Rectify(ctx, admin, f.subject("c1"), f.conv, map[string]json.RawMessage{"country": json.RawMessage(`"FR"`)})
	if err != nil || rc.Rows != 4 {
		t.Fatalf("rectify: %+v, %v", rc, err)
	}
	exp, err := f.svc.Export(ctx, admin, f.subject("c1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range exp.Events {
		if ev["country"] != "FR" || ev["amount"] != json.Number("1.500") {
			t.Errorf("after rectification: %v", ev)
		}
	}
	if got := f.actions(t); !contains(got, "key_admin subject.rectify ok") {
		t.Errorf("audit = %q, want a rectification", got)
	}
	if f.erased[0] != "rectify 4" {
		t.Errorf("hooks told %q, want rectify 4", f.erased)
	}
}

func TestEraseHidesAtOnceAndCompletesWithCompaction(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	rc, err := f.svc.Erase(ctx, admin, f.subject("c0"))
	if err != nil || rc.Rows != 4 || rc.Status != privalytics.ErasurePending {
		t.Fatalf("erase: %+v, %v", rc, err)
	}
	if exp, err := f.svc.Export(ctx, admin, f.subject("c0")); err != nil || exp.Rows != 0 {
		t.Errorf("export after erasure: %+v, %v; want no rows", exp, err)
	}
	if err := f.events.Compact(ctx, "shop", f.tenant.Schema); err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.Receipt(ctx, f.tenant, rc.ID)
	if err != nil || got.Status != privalytics.ErasureComplete || got.CompletedAt == nil {
		t.Errorf("receipt after compaction: %+v, %v", got, err)
	}
	if _, err := f.svc.Receipt(ctx, f.tenant, "er_nope"); privalytics.ErrorCode(err) != privalytics.ENOTFOUND {
		t.Errorf("unknown receipt: %v", err)
	}
	if a := f.actions(t); !contains(a, "key_admin subject.erase ok") {
		t.Errorf("audit = %q, want an erasure", a)
	}
}

func TestRetentionPurgesAuditsAndIsSetByTheAdmin(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	if got, err := f.svc.PurgeExpired(ctx, f.now); err != nil || len(got) != 0 {
		t.Fatalf("purge without a retention period: %+v, %v", got, err)
	}
	if err := f.svc.SetRetention(ctx, admin, "shop", 30); err != nil {
		t.Fatal(err)
	}
	// On 1 March, 30 days keep February's events (10 Feb) and purge January's.
	got, err := f.svc.PurgeExpired(ctx, f.now)
	if err != nil || len(got) != 1 || got[0].Rows != 6 {
		t.Fatalf("purge: %+v, %v; want one purge of 6 rows", got, err)
	}
	if err := f.svc.SetRetention(ctx, admin, "shop", -1); privalytics.ErrorCode(err) != privalytics.EINVALID {
		t.Errorf("retention -1: %v, want invalid", err)
	}
	a := f.actions(t)
	for _, want := range []string{"key_admin tenant.retention ok", "retention retention.purge ok", "key_admin tenant.retention invalid"} {
		if !contains(a, want) {
			t.Errorf("audit = %q, want %q", a, want)
		}
	}
	if len(f.purged) != 1 {
		t.Errorf("purge hook called %d times, want 1", len(f.purged))
	}
}

// The retention loop runs a first pass at once, and Close stops it and waits
// for it, so the stores can close after.
func TestRetentionLoopIsOwnedAndClosed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if err := f.svc.SetRetention(context.Background(), admin, "shop", 30); err != nil {
		t.Fatal(err)
	}
	f.svc.StartRetention(time.Hour)
	f.svc.StartRetention(time.Hour) // a second start is a no-op, not a second goroutine
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		n := len(f.purged)
		f.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the retention loop's first pass did not purge within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := f.svc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Close(); err != nil {
		t.Fatal("a second Close:", err)
	}
}

func TestCheckCustomerID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		id string
		ok bool
	}{{"", false}, {"c1", true}, {strings.Repeat("x", rights.MaxCustomerIDBytes), true}, {strings.Repeat("x", rights.MaxCustomerIDBytes+1), false}} {
		if err := rights.CheckCustomerID(tc.id); (err == nil) != tc.ok {
			t.Errorf("CheckCustomerID(%d bytes) = %v, want ok %v", len(tc.id), err, tc.ok)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// brokenAudit cannot write: the disk under the audit log is full.
type brokenAudit struct{}

func (brokenAudit) Append(context.Context, *privalytics.AuditEntry) error {
	return errors.New("no space left on device")
}
func (brokenAudit) Entries(context.Context, string, int, int) ([]privalytics.AuditEntry, error) {
	return nil, nil
}

// A customer's data leaves only on the record: an export whose audit entry
// cannot be written is refused with an internal error.
func TestExportFailsClosedWithoutAudit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	svc := rights.New(rights.Deps{Events: f.events, Audit: brokenAudit{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	exp, err := svc.Export(context.Background(), admin, f.subject("c1"))
	if exp != nil || privalytics.ErrorCode(err) != privalytics.EINTERNAL {
		t.Fatalf("export without an audit trail: %+v, %v; want no export and an internal error", exp, err)
	}
}
