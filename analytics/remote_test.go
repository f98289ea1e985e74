package analytics

import (
	"context"
	"errors"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp/dptest"
)

// fakeEngine records what the ledger held when the job was submitted.
type fakeEngine struct {
	ledger       *fakeLedger
	chargesAtRun int
	err          error
	cells        []RemoteCell
}

func (e *fakeEngine) Run(_ context.Context, job RemoteJob) ([]RemoteCell, error) {
	e.chargesAtRun = e.ledger.count()
	return e.cells, e.err
}

func TestRemoteEngineChargedFirstNeverRefunded(t *testing.T) {
	t.Parallel()
	snap := snapshotOf(randomEvents(newRNG(5, 6), 500, 40), 100)
	q := func() *privalytics.Query {
		return &privalytics.Query{Engine: "beam", GroupBy: []privalytics.GroupKey{{Column: "channel"}},
			Aggregates: []privalytics.Aggregate{{Op: "count"}, {Op: "sum", Column: "amount", Lower: f64(0), Upper: f64(10)}}, Epsilon: 0.5}
	}
	t.Run("answered", func(t *testing.T) {
		l := &fakeLedger{total: privalytics.Cost{Epsilon: 1}}
		e := &fakeEngine{ledger: l, cells: []RemoteCell{{Aggregate: 0, Key: []string{"web"}, Value: 120}, {Aggregate: 1, Key: []string{"web"}, Value: 300}}}
		f := &fakePorts{snap: snap}
		svc := NewService(ServiceDeps{Ledger: l, Events: f, Consent: f, Mechanisms: dptest.NoNoise(), Audit: f, Engines: map[string]RemoteEngine{"beam": e}})
		res, err := svc.Run(context.Background(), request(q()))
		if err != nil {
			t.Fatal(err)
		}
		if e.chargesAtRun != 1 {
			t.Errorf("the ledger held %d charges when the job was submitted, want 1", e.chargesAtRun)
		}
		if len(res.Rows) != 1 || res.Rows[0].Cells[0].Value != 120 {
			t.Fatalf("rows %+v, want the engine's web cell", res.Rows)
		}
		for i, c := range res.Rows[0].Cells {
			if !(c.Lower < c.Value && c.Value < c.Upper) {
				t.Errorf("cell %d: %v not inside a proper interval [%v, %v]", i, c.Value, c.Lower, c.Upper)
			}
		}
		again, err := svc.Run(context.Background(), request(q()))
		if err != nil || !again.Cached || l.count() != 1 {
			t.Errorf("repeat: cached %v, err %v, charges %d; want the cached answer, still one charge", again != nil && again.Cached, err, l.count())
		}
	})
	t.Run("failed job", func(t *testing.T) {
		l := &fakeLedger{total: privalytics.Cost{Epsilon: 1}}
		e := &fakeEngine{ledger: l, err: errors.New("runner died")}
		f := &fakePorts{snap: snap}
		svc := NewService(ServiceDeps{Ledger: l, Events: f, Consent: f, Mechanisms: dptest.NoNoise(), Audit: f, Engines: map[string]RemoteEngine{"beam": e}})
		if _, err := svc.Run(context.Background(), request(q())); err == nil {
			t.Fatal("a failed job answered")
		}
		if l.count() != 1 || l.spent().Epsilon != 0.5 {
			t.Errorf("charges %d, spent %v; want the failed job charged once, not refunded", l.count(), l.spent().Epsilon)
		}
	})
	t.Run("not configured", func(t *testing.T) {
		l := &fakeLedger{total: privalytics.Cost{Epsilon: 1}}
		f := &fakePorts{snap: snap}
		svc := newTestService(l, f, dptest.NoNoise(), 0)
		_, err := svc.Run(context.Background(), request(q()))
		if privalytics.ErrorCode(err) != privalytics.EINVALID || l.count() != 0 || f.snapCalls != 0 {
			t.Errorf("got %v, %d charges, %d snapshots; want a free 400 before any data is read", err, l.count(), f.snapCalls)
		}
	})
}

// What the Beam pipeline does not compile — automatic tuning (its histograms
// are drawn in this process) and per-group bounds — is refused at plan time,
// for free, rather than run with other bounds than the answer would report.
func TestRemoteEngineRefusesTuningAndPerGroupBounds(t *testing.T) {
	t.Parallel()
	snap := snapshotOf(randomEvents(newRNG(7, 8), 200, 20), 50)
	for name, q := range map[string]*privalytics.Query{
		"tuned": {Engine: "beam", GroupBy: []privalytics.GroupKey{{Column: "channel"}},
			Aggregates: []privalytics.Aggregate{{Op: "sum", Column: "amount"}}, Epsilon: 0.5},
		"per-group": {Engine: "beam", GroupBy: []privalytics.GroupKey{{Column: "channel"}}, Bounds: privalytics.Bounds{MaxGroups: 2},
			Aggregates: []privalytics.Aggregate{{Op: "sum", Column: "amount", ContributionBoundsPerGroup: &privalytics.GroupBounds{Lower: 0, Upper: 50}}}, Epsilon: 0.5},
	} {
		l := &fakeLedger{total: privalytics.Cost{Epsilon: 1}}
		e := &fakeEngine{ledger: l}
		f := &fakePorts{snap: snap}
		svc := NewService(ServiceDeps{Ledger: l, Events: f, Consent: f, Mechanisms: dptest.NoNoise(), Audit: f, Engines: map[string]RemoteEngine{"beam": e}})
		_, err := svc.Run(context.Background(), request(q))
		if privalytics.ErrorCode(err) != privalytics.EINVALID || l.count() != 0 || f.snapCalls != 0 {
			t.Errorf("%s: got %v, %d charges, %d snapshots; want a free 400 before any data is read", name, err, l.count(), f.snapCalls)
		}
	}
}
