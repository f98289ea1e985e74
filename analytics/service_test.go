package analytics

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/differential-privacy/go/v3/noise"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
	"github.com/privalytics/privalytics/dp/dptest"
)

// fakeLedger is an in-memory ledger with basic composition, counting calls.
type fakeLedger struct {
	mu                   sync.Mutex
	total                privalytics.Cost
	charges              []privalytics.Charge
	budgetCalls, keyCall int
}

func (l *fakeLedger) spent() privalytics.Cost {
	var s privalytics.Cost
	for _, c := range l.charges {
		s.Epsilon += c.Cost.Epsilon
		s.Delta += c.Cost.Delta
	}
	return s
}

func (l *fakeLedger) status() privalytics.BudgetStatus {
	s := l.spent()
	return privalytics.BudgetStatus{Total: l.total, Spent: s, Remaining: privalytics.Cost{Epsilon: l.total.Epsilon - s.Epsilon, Delta: l.total.Delta - s.Delta}}
}

func (l *fakeLedger) Budget(context.Context, string) (privalytics.BudgetStatus, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.budgetCalls++
	return l.status(), nil
}

// Reserved: the fake keeps one budget, so no view reserves anything.
func (l *fakeLedger) Reserved(context.Context, string, string, []string) (map[string]privalytics.Cost, error) {
	return nil, nil
}

func (l *fakeLedger) KeyBudget(context.Context, string, string) (privalytics.KeyBudget, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keyCall++
	st := l.status()
	return privalytics.KeyBudget{Shared: true, Total: st.Total, Spent: st.Spent, Remaining: st.Remaining}, nil
}

func (l *fakeLedger) Charge(_ context.Context, c *privalytics.Charge) (privalytics.BudgetStatus, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.status()
	if c.Cost.Epsilon > st.Remaining.Epsilon || c.Cost.Delta > st.Remaining.Delta {
		return st, dp.BudgetError(st.Accounting, st.Remaining, c.Cost)
	}
	c.ID = "charge-" + string(rune('a'+len(l.charges)))
	l.charges = append(l.charges, *c)
	return l.status(), nil
}

func (l *fakeLedger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.charges)
}

// fakePorts are the snapshot, consent and audit ports.
type fakePorts struct {
	snap      *privalytics.Snapshot
	hide      func(subject uint64) bool // nil: nobody hidden
	snapCalls int
	audited   []privalytics.AuditEntry
	auditErr  error // returned for answered queries
}

func (f *fakePorts) Snapshot(context.Context, string, privalytics.Schema) (*privalytics.Snapshot, error) {
	f.snapCalls++
	return f.snap, nil
}

func (f *fakePorts) ConsentVersion(context.Context, string) (int64, error) { return 1, nil }

func (f *fakePorts) Hidden(_ context.Context, _ *privalytics.Tenant, _ string, snap *privalytics.Snapshot) ([]bool, int64, error) {
	if f.hide == nil {
		return nil, 1, nil
	}
	h, err := HiddenSubjects(snap, func(s uint64) bool { return !f.hide(s) })
	return h, 1, err
}

func (f *fakePorts) Append(_ context.Context, e *privalytics.AuditEntry) error {
	f.audited = append(f.audited, *e)
	if e.Outcome == privalytics.AuditOK {
		return f.auditErr
	}
	return nil
}

var testTenant = &privalytics.Tenant{ID: "shop", Schema: schema, Purposes: []string{privalytics.DefaultPurpose}}

func newTestService(l *fakeLedger, f *fakePorts, m dp.Mechanisms, timeout time.Duration) *Service {
	return NewService(ServiceDeps{Ledger: l, Events: f, Consent: f, Mechanisms: m, Audit: f, Timeout: timeout})
}

func request(q *privalytics.Query) Request {
	return Request{Tenant: testTenant, KeyID: "k1", Query: q, FingerprintKey: []byte("0123456789abcdef")}
}

// chargedNoise is NoNoise that fails the test when noise is drawn before the
// ledger holds a charge: nothing derived from the data may be released first.
type chargedNoise struct {
	noise.Noise
	t      *testing.T
	ledger *fakeLedger
	calls  *int
}

func (n chargedNoise) AddNoiseInt64(x, l0, linf int64, eps, delta float64) (int64, error) {
	*n.calls++
	if n.ledger.count() == 0 {
		n.t.Errorf("noise drawn before the charge")
	}
	return n.Noise.AddNoiseInt64(x, l0, linf, eps, delta)
}

func TestServiceChargesBeforeRelease(t *testing.T) {
	t.Parallel()
	l := &fakeLedger{total: privalytics.Cost{Epsilon: 1}}
	// One event per customer: the bounded count is the plain count.
	events := make([]event, 500)
	for i := range events {
		events[i] = event{subj: uint64(i), ts: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), typ: "purchase", channel: "web"}
	}
	f := &fakePorts{snap: snapshotOf(events, 100)}
	m := dptest.NoNoise()
	calls := 0
	m.Laplace = chargedNoise{Noise: m.Laplace, t: t, ledger: l, calls: &calls}
	svc := newTestService(l, f, m, 0)
	res, err := svc.Run(context.Background(), request(&privalytics.Query{Aggregates: []privalytics.Aggregate{{Op: "count"}}, Epsilon: 0.5}))
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 || l.count() != 1 || res.Rows[0].Cells[0].Value != 500 {
		t.Errorf("noise calls %d, charges %d, count %v; want noise after one charge and the exact count 500", calls, l.count(), res.Rows[0].Cells[0].Value)
	}
	if !strings.HasPrefix(res.Snapshot, "ans_") || res.Snapshot == "1" {
		t.Errorf("answer id %q: want an opaque ans_… id, not the snapshot version", res.Snapshot)
	}
	if got := l.charges[0].Fingerprint; len(got) != 64 || got == (&Plan{}).Fingerprint(nil) {
		t.Errorf("charge fingerprint %q: want a keyed 64-hex HMAC", got)
	}
	if len(f.audited) != 1 {
		t.Fatalf("%d audit entries, want 1", len(f.audited))
	}
	e := f.audited[0]
	if e.Action != AuditActionQuery || e.Actor != "k1" || e.TenantID != "shop" || e.Outcome != privalytics.AuditOK ||
		e.Details["charge_id"] != l.charges[0].ID || e.Details["fingerprint"] != l.charges[0].Fingerprint || e.Details["answer_id"] != res.Snapshot {
		t.Errorf("audit entry %+v: want the query's charge, fingerprint and answer id", e)
	}
}

func TestServiceNoRefundAfterExecution(t *testing.T) {
	t.Parallel()
	snap := snapshotOf(randomEvents(newRNG(3, 4), 2000, 50), 100)
	q := &privalytics.Query{Aggregates: []privalytics.Aggregate{{Op: "count"}}, Epsilon: 0.25}

	t.Run("time limit", func(t *testing.T) {
		l := &fakeLedger{total: privalytics.Cost{Epsilon: 1}}
		svc := newTestService(l, &fakePorts{snap: snap}, dptest.NoNoise(), time.Nanosecond)
		_, err := svc.Run(context.Background(), request(q))
		if privalytics.ErrorCode(err) != privalytics.EINVALID || !strings.Contains(privalytics.ErrorMessage(err), "charged") {
			t.Errorf("got %v, want a 400 that says the stopped query was charged", err)
		}
		if l.count() != 1 || l.spent().Epsilon != 0.25 {
			t.Errorf("charges %d spending ε %v; want the stopped query charged once", l.count(), l.spent().Epsilon)
		}
	})
	t.Run("audit failure", func(t *testing.T) {
		l := &fakeLedger{total: privalytics.Cost{Epsilon: 1}}
		f := &fakePorts{snap: snap, auditErr: errors.New("disk full")}
		svc := newTestService(l, f, dptest.NoNoise(), 0)
		res, err := svc.Run(context.Background(), request(q))
		if err == nil || res != nil {
			t.Fatalf("got %v, %v; want the answer withheld when its audit entry cannot be written", res, err)
		}
		if l.count() != 1 {
			t.Errorf("charges %d; want the charge to stay (the data was read)", l.count())
		}
	})
}

func TestServiceCacheHitIsFreeAndBeforeBudgetCheck(t *testing.T) {
	t.Parallel()
	l := &fakeLedger{total: privalytics.Cost{Epsilon: 0.5}}
	f := &fakePorts{snap: snapshotOf(randomEvents(newRNG(5, 6), 300, 30), 100)}
	svc := newTestService(l, f, dp.Secure(), 0)
	q := &privalytics.Query{Aggregates: []privalytics.Aggregate{{Op: "count"}}, Epsilon: 0.5}
	first, err := svc.Run(context.Background(), request(q))
	if err != nil {
		t.Fatal(err)
	}
	keyChecks := l.keyCall
	// The budget is spent now; the same query is its cached answer, free.
	again, err := svc.Run(context.Background(), request(q))
	if err != nil {
		t.Fatalf("repeat with the budget spent: %v, want the cached answer", err)
	}
	if !again.Cached || again.Cost != (privalytics.Cost{}) || again.Rows[0].Cells[0] != first.Rows[0].Cells[0] || again.Snapshot != first.Snapshot {
		t.Errorf("repeat: cached %v cost %+v cell %+v id %s; want the first answer (%+v, %s) at no cost", again.Cached, again.Cost, again.Rows[0].Cells[0], again.Snapshot, first.Rows[0].Cells[0], first.Snapshot)
	}
	if l.count() != 1 || l.keyCall != keyChecks {
		t.Errorf("charges %d, key pre-checks %d→%d; want no charge and no pre-check for a cache hit", l.count(), keyChecks, l.keyCall)
	}
	// Another query is refused by the pre-check, before any data is read.
	other := *q
	other.Confidence = 0.9
	if _, err := svc.Run(context.Background(), request(&other)); privalytics.ErrorCode(err) != privalytics.EBUDGET {
		t.Errorf("another query past the budget: %v, want %s", err, privalytics.EBUDGET)
	}
}

func TestServiceConsentMask(t *testing.T) {
	t.Parallel()
	events := randomEvents(newRNG(7, 8), 1000, 40)
	// One customer, hidden, has an event two years after everyone else.
	late := event{subj: 999, ts: time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC), typ: "purchase", channel: "web"}
	events = append(events, late)
	visible := map[uint64]bool{}
	for _, e := range events {
		if e.subj%4 != 0 && e.subj != 999 {
			visible[e.subj] = true
		}
	}
	f := &fakePorts{snap: snapshotOf(events, 128), hide: func(s uint64) bool { return s%4 == 0 || s == 999 }}
	svc := newTestService(&fakeLedger{total: privalytics.Cost{Epsilon: 10, Delta: 1e-3}}, f, dptest.NoNoise(), 0)
	res, err := svc.Run(context.Background(), request(&privalytics.Query{Aggregates: []privalytics.Aggregate{{Op: "distinct_customers"}}, Epsilon: 1}))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Rows[0].Cells[0].Value; got != float64(len(visible)) {
		t.Errorf("%v customers counted, want the %d visible ones", got, len(visible))
	}
	// Data-derived time buckets come from visible rows only: the hidden
	// customer's late event neither adds buckets nor, with at most 20 buckets
	// allowed, turns the answer into a refusal (it did before issue 13).
	svc.limits.MaxTimeBuckets = 20
	// Fixed bounds (the defaults): tuned, L0 and so partition selection's
	// threshold would depend on the data, and a month of few customers could
	// fall below it.
	fixedL0 := privalytics.Bounds{MaxGroups: 4}
	res, err = svc.Run(context.Background(), request(&privalytics.Query{GroupBy: []privalytics.GroupKey{{Time: "month"}}, Bounds: fixedL0, Aggregates: []privalytics.Aggregate{{Op: "count"}}, Epsilon: 1, Delta: 1e-6}))
	if err != nil {
		t.Fatalf("months of the visible rows (12) with a hidden event 18 months later: %v", err)
	}
	if len(res.Rows) != 12 {
		t.Errorf("%d months released, want the 12 of 2025", len(res.Rows))
	}
	for _, r := range res.Rows {
		if !strings.HasPrefix(r.Key[0], "2025-") {
			t.Errorf("bucket %s released; only the visible customers' 2025 may be", r.Key[0])
		}
	}
	// More buckets than allowed in the visible rows themselves: the most
	// recent 20 weeks are candidates, no refusal.
	res, err = svc.Run(context.Background(), request(&privalytics.Query{GroupBy: []privalytics.GroupKey{{Time: "week"}}, Bounds: fixedL0, Aggregates: []privalytics.Aggregate{{Op: "count"}}, Epsilon: 1, Delta: 1e-6}))
	if err != nil {
		t.Fatalf("52 weeks of visible rows, 20 allowed: %v", err)
	}
	if len(res.Rows) == 0 || len(res.Rows) > 20 || res.Rows[len(res.Rows)-1].Key[0] != "2025-W52" && res.Rows[len(res.Rows)-1].Key[0] != "2026-W01" {
		t.Errorf("weeks %v: want at most the 20 most recent, ending with the last week of 2025", res.Rows)
	}
}

func TestServiceRefusesFromPublicInformationBeforeReadingData(t *testing.T) {
	t.Parallel()
	lo, hi := 0.0, 100.0
	for name, q := range map[string]*privalytics.Query{
		"tiny epsilon":           {GroupBy: []privalytics.GroupKey{{Column: "category"}}, Bounds: privalytics.Bounds{MaxGroups: 5}, Aggregates: []privalytics.Aggregate{{Op: "count"}}, Epsilon: 1e-16, Delta: 1e-6},
		"tiny weight":            {Aggregates: []privalytics.Aggregate{{Op: "count"}, {Op: "sum", Column: "amount", Lower: &lo, Upper: &hi, Weight: 1e-300}}, Epsilon: 1},
		"tiny delta share":       {Noise: "gaussian", Aggregates: []privalytics.Aggregate{{Op: "count"}, {Op: "mean", Column: "amount", Lower: &lo, Upper: &hi, Weight: 1e-300}}, Epsilon: 1, Delta: 1e-20},
		"ledger overflow":        {Aggregates: []privalytics.Aggregate{{Op: "count"}}, Bounds: privalytics.Bounds{MaxGroups: 1}, Epsilon: 5000},
		"ledger overflow, tuned": {Aggregates: []privalytics.Aggregate{{Op: "count"}}, Epsilon: 7000},
		"edge out of range":      {GroupBy: []privalytics.GroupKey{{Column: "amount", Buckets: []float64{0, 1e17}}}, Aggregates: []privalytics.Aggregate{{Op: "count"}}, Epsilon: 1},
		"edges in one unit":      {GroupBy: []privalytics.GroupKey{{Column: "amount", Buckets: []float64{1.0001, 1.0002, 5}}}, Aggregates: []privalytics.Aggregate{{Op: "count"}}, Epsilon: 1},
		"undeclared purpose":     {Purpose: "ads", Aggregates: []privalytics.Aggregate{{Op: "count"}}, Epsilon: 1},
	} {
		l := &fakeLedger{total: privalytics.Cost{Epsilon: 1e4, Delta: 0.5}}
		f := &fakePorts{snap: snapshotOf(randomEvents(newRNG(9, 9), 100, 10), 50)}
		_, err := newTestService(l, f, dp.Secure(), 0).Run(context.Background(), request(q))
		if privalytics.ErrorCode(err) != privalytics.EINVALID {
			t.Errorf("%s: %v, want %s", name, err, privalytics.EINVALID)
		}
		if f.snapCalls != 0 || l.count() != 0 {
			t.Errorf("%s: %d snapshots read, %d charges; want none", name, f.snapCalls, l.count())
		}
	}
}
