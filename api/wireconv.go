package api

import (
	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/analytics"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/notice"
)

// Conversions between the domain types of the root package and the bodies of
// api/wire. The root package must not import api/wire (it holds no HTTP), and
// wire imports nothing of ours (the SDK stays light), so api converts. Where
// both have the same fields a Go conversion is used, so that a field added on
// one side only fails to compile; the others are written out, and
// TestWireMirrorsDomain checks that their JSON fields agree.

func wireCost(c privalytics.Cost) wire.Cost { return wire.Cost(c) }
func rootCost(c wire.Cost) privalytics.Cost { return privalytics.Cost(c) }

func wireSchema(s privalytics.Schema) wire.Schema {
	out := wire.Schema{Subject: s.Subject, Time: s.Time, Columns: make([]wire.Column, len(s.Columns))}
	for i, c := range s.Columns {
		out.Columns[i] = wire.Column{Name: c.Name, Type: string(c.Type), Required: c.Required, Allowed: c.Allowed, MaxLength: c.MaxLength,
			Scale: c.Scale, FreeText: c.FreeText, Description: c.Description}
	}
	return out
}

func rootSchema(s wire.Schema) privalytics.Schema {
	out := privalytics.Schema{Subject: s.Subject, Time: s.Time, Columns: make([]privalytics.Column, len(s.Columns))}
	for i, c := range s.Columns {
		out.Columns[i] = privalytics.Column{Name: c.Name, Type: privalytics.ColumnType(c.Type), Required: c.Required, Allowed: c.Allowed,
			MaxLength: c.MaxLength, Scale: c.Scale, FreeText: c.FreeText, Description: c.Description}
	}
	return out
}

func wirePolicy(p privalytics.PrivacyPolicy) wire.PrivacyPolicy { return wire.PrivacyPolicy(p) }
func rootPolicy(p wire.PrivacyPolicy) privalytics.PrivacyPolicy { return privalytics.PrivacyPolicy(p) }

// wireTenant is a tenant as the API shows it: never its wrapped key.
func wireTenant(t *privalytics.Tenant) *wire.Tenant {
	return &wire.Tenant{ID: t.ID, Name: t.Name, Schema: wireSchema(t.Schema), Budget: wireCost(t.Budget), Purposes: t.Purposes,
		Period: t.Period, Accounting: t.Accounting, Privacy: wirePolicy(t.Privacy), RetentionDays: t.RetentionDays, CreatedAt: t.CreatedAt}
}

// wireKey is a key as the API lists it: never its hash.
func wireKey(k privalytics.APIKey) wire.APIKey {
	return wire.APIKey{ID: k.ID, TenantID: k.TenantID, Name: k.Name, Role: wire.Role(k.Role), CreatedAt: k.CreatedAt, RevokedAt: k.RevokedAt}
}

func wireAudit(es []privalytics.AuditEntry) []wire.AuditEntry {
	out := make([]wire.AuditEntry, len(es))
	for i, e := range es {
		out[i] = wire.AuditEntry(e)
	}
	return out
}

// RootQuery is a query body as the engine's query (the query and SQL routes).
func RootQuery(q *wire.Query) *privalytics.Query {
	out := &privalytics.Query{Purpose: q.Purpose, Bounds: privalytics.Bounds(q.Bounds), Epsilon: q.Epsilon, Delta: q.Delta, Noise: q.Noise,
		Confidence: q.Confidence, TimeZone: q.TimeZone, Engine: q.Engine, Rollup: q.Rollup}
	if q.Tuning != nil {
		out.Tuning = &privalytics.Tuning{Share: q.Tuning.Share, CorrectBias: q.Tuning.CorrectBias}
	}
	for _, f := range q.Where {
		out.Where = append(out.Where, privalytics.Filter(f))
	}
	for _, g := range q.GroupBy {
		out.GroupBy = append(out.GroupBy, privalytics.GroupKey(g))
	}
	for _, a := range q.Aggregates {
		out.Aggregates = append(out.Aggregates, rootAggregate(a))
	}
	return out
}

func rootAggregate(a wire.Aggregate) privalytics.Aggregate {
	out := privalytics.Aggregate{Name: a.Name, Op: a.Op, Column: a.Column, Lower: a.Lower, Upper: a.Upper, Bounds: a.Bounds, AutoShare: a.AutoShare,
		Within: a.Within, Weight: a.Weight, Rank: a.Rank}
	if g := a.ContributionBoundsPerGroup; g != nil {
		out.ContributionBoundsPerGroup = &privalytics.GroupBounds{Lower: g.Lower, Upper: g.Upper, MaxNorm: g.MaxNorm}
	}
	return out
}

func wireAggregateInfo(a privalytics.AggregateInfo) wire.AggregateInfo {
	out := wire.AggregateInfo{Name: a.Name, Op: a.Op, Column: a.Column, Mechanism: a.Mechanism, Epsilon: a.Epsilon, Delta: a.Delta,
		Lower: a.Lower, Upper: a.Upper, AutoBounds: a.AutoBounds, BoundsEpsilon: a.BoundsEpsilon, Tuned: a.Tuned}
	if g := a.ContributionBoundsPerGroup; g != nil {
		out.ContributionBoundsPerGroup = &wire.GroupBounds{Lower: g.Lower, Upper: g.Upper, MaxNorm: g.MaxNorm}
	}
	return out
}

// WireBudget is a budget status as the API sends it.
func WireBudget(b *privalytics.BudgetStatus) *wire.BudgetStatus {
	if b == nil {
		return nil
	}
	out := &wire.BudgetStatus{TenantID: b.TenantID, Total: wireCost(b.Total), Spent: wireCost(b.Spent), Remaining: wireCost(b.Remaining),
		Allocated: wireCost(b.Allocated), Period: b.Period, Accounting: b.Accounting}
	for _, p := range b.Periods {
		out.Periods = append(out.Periods, wire.PeriodStatus{Period: p.Period, Spent: wireCost(p.Spent), Remaining: wireCost(p.Remaining), Reserved: wireCost(p.Reserved)})
	}
	return out
}

// WireResult is an answer as the API sends it.
func WireResult(r *privalytics.Result) *wire.Result {
	if r == nil {
		return nil
	}
	out := &wire.Result{GroupBy: r.GroupBy, Confidence: r.Confidence, Cost: wireCost(r.Cost), Thresholded: r.Thresholded,
		Snapshot: r.Snapshot, Cached: r.Cached, Budget: WireBudget(r.Budget), Aggregates: make([]wire.AggregateInfo, len(r.Aggregates)),
		Rows: make([]wire.Row, len(r.Rows))}
	for i, a := range r.Aggregates {
		out.Aggregates[i] = wireAggregateInfo(a)
	}
	if t := r.Tuning; t != nil {
		out.Tuning = &wire.TuningReport{Share: t.Share, Epsilon: t.Epsilon, MaxGroups: t.MaxGroups, Noise: t.Noise, Reason: t.Reason}
		for _, a := range t.Aggregates {
			out.Tuning.Aggregates = append(out.Tuning.Aggregates, wire.TunedAggregate(a))
		}
	}
	for i, row := range r.Rows {
		out.Rows[i] = wire.Row{Key: row.Key, Cells: make([]wire.Cell, len(row.Cells)), Subtotal: row.Subtotal}
		for j, c := range row.Cells {
			out.Rows[i].Cells[j] = wire.Cell{Value: c.Value, Lower: c.Lower, Upper: c.Upper, BoundingLoss: c.BoundingLoss, Hidden: c.Hidden, Reason: c.Reason}
		}
	}
	return out
}

// WireExplanation is an explanation as the API sends it.
func WireExplanation(e *analytics.Explanation) *wire.Explanation {
	out := &wire.Explanation{Cost: wireCost(e.Cost), Confidence: e.Confidence, Thresholded: e.Thresholded, AccuracyFirst: e.AccuracyFirst,
		Budget: WireBudget(e.Budget), Aggregates: make([]wire.AggregateExplanation, len(e.Aggregates))}
	for i, a := range e.Aggregates {
		out.Aggregates[i] = wire.AggregateExplanation{AggregateInfo: wireAggregateInfo(a.AggregateInfo), HalfWidth: a.HalfWidth, HiddenBelow: a.HiddenBelow,
			SubtotalHalfWidths: a.SubtotalHalfWidths, Note: a.Note}
	}
	return out
}

// wireNotice is a privacy notice as the API sends it.
func wireNotice(n notice.Notice) wire.Notice {
	out := wire.Notice{Business: n.Business, TenantID: n.TenantID, NotCollected: n.NotCollected, Protection: wire.NoticeProtection(n.Protection),
		Retention: n.Retention, Processors: n.Processors, Audit: n.Audit, StrayData: n.StrayData, Budget: wireCost(n.Budget)}
	for _, f := range n.Collected {
		out.Collected = append(out.Collected, wire.NoticeField(f))
	}
	for _, p := range n.Purposes {
		out.Purposes = append(out.Purposes, wire.NoticePurpose(p))
	}
	for _, r := range n.Rights {
		out.Rights = append(out.Rights, wire.NoticeRight(r))
	}
	return out
}

// WireWorkload is a workload explanation as the API sends it.
func WireWorkload(w *analytics.WorkloadExplanation) *wire.WorkloadExplanation {
	out := &wire.WorkloadExplanation{Cost: wireCost(w.Cost), Budget: WireBudget(w.Budget), Fits: w.Fits, Queries: make([]wire.Explanation, len(w.Queries))}
	for i := range w.Queries {
		out.Queries[i] = *WireExplanation(&w.Queries[i])
	}
	return out
}
