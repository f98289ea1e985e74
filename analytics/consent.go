package analytics

import (
	"context"
	"sync"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/privalytics/privalytics"
)

// HiddenSubjects marks, by dense subject number, the customers of the snapshot
// that a query may not see: those for whom visible(pseudonym) is false. It
// returns nil when every customer is visible. The API builds it from consent
// decisions once per (snapshot, consent version) and passes it to
// ExecuteHiding; it reads only the subject column.
func HiddenSubjects(snap *privalytics.Snapshot, visible func(subject uint64) bool) ([]bool, error) {
	hidden := make([]bool, snap.Subjects)
	any := false
	for _, ch := range snap.Chunks {
		idx := ch.Record.Schema().FieldIndices(privalytics.SubjectColumn)
		if len(idx) != 1 {
			return nil, privalytics.Errorf(privalytics.EINTERNAL, "analytics: a chunk has no %q column", privalytics.SubjectColumn)
		}
		col := ch.Record.Column(idx[0])
		if !isSubjectColumn(col) || col.Len() != len(ch.Subjects) {
			return nil, privalytics.Errorf(privalytics.EINTERNAL, "analytics: the %q column is not one uint64 per row", privalytics.SubjectColumn)
		}
		vals := privalytics.Uint64s(col)
		for i, n := range ch.Subjects {
			if int(n) >= len(hidden) {
				return nil, privalytics.Errorf(privalytics.EINTERNAL, "analytics: subject number %d is not below the snapshot's %d subjects", n, len(hidden))
			}
			if !visible(vals[i]) {
				hidden[n] = true
				any = true
			}
		}
	}
	if !any {
		return nil, nil
	}
	return hidden, nil
}

// isSubjectColumn reports whether col holds subject pseudonyms: uint64, plain or
// dictionary-encoded in memory.
func isSubjectColumn(col arrow.Array) bool {
	if d, ok := col.(*array.Dictionary); ok {
		_, ok = d.Dictionary().(*array.Uint64)
		return ok
	}
	_, ok := col.(*array.Uint64)
	return ok
}

// ConsentDecisions is the part of the consent store the masks are built from
// (privalytics.ConsentStore satisfies it).
type ConsentDecisions interface {
	ConsentVersion(ctx context.Context, tenantID string) (int64, error)
	ConsentDecisions(ctx context.Context, tenantID, purpose string) (map[uint64]bool, int64, error)
}

// ConsentMasks is the Service's Consent port over a consent store: it builds
// the hidden-customer mask of a tenant and purpose and keeps the newest one
// until the snapshot or the consent version changes.
type ConsentMasks struct {
	store ConsentDecisions
	mu    sync.Mutex
	views map[string]*consentView // tenant|purpose → the newest mask
}

// consentView is the mask of one tenant and purpose at one snapshot and
// consent version.
type consentView struct {
	consent  int64
	snapshot uint64
	subjects int
	hidden   []bool
}

// NewConsentMasks returns masks over store.
func NewConsentMasks(store ConsentDecisions) *ConsentMasks {
	return &ConsentMasks{store: store, views: map[string]*consentView{}}
}

// ConsentVersion is the store's.
func (c *ConsentMasks) ConsentVersion(ctx context.Context, tenantID string) (int64, error) {
	return c.store.ConsentVersion(ctx, tenantID)
}

// Hidden returns which customers of snap a query for purpose may not see, and
// the consent version that decided it. A purpose with the opt-out policy and
// no consent records hides no one at no cost.
func (c *ConsentMasks) Hidden(ctx context.Context, t *privalytics.Tenant, purpose string, snap *privalytics.Snapshot) ([]bool, int64, error) {
	optIn := t.ConsentPolicy(purpose) == privalytics.OptIn
	ver, err := c.store.ConsentVersion(ctx, t.ID)
	if err != nil {
		return nil, 0, err
	}
	if ver == 0 && !optIn {
		return nil, 0, nil
	}
	key := t.ID + "|" + purpose
	c.mu.Lock()
	v := c.views[key]
	c.mu.Unlock()
	if v != nil && v.consent == ver && v.snapshot == snap.Version && v.subjects == snap.Subjects {
		return v.hidden, ver, nil
	}
	decisions, ver, err := c.store.ConsentDecisions(ctx, t.ID, purpose)
	if err != nil {
		return nil, 0, err
	}
	hidden, err := HiddenSubjects(snap, func(subj uint64) bool {
		if g, ok := decisions[subj]; ok {
			return g
		}
		return !optIn
	})
	if err != nil {
		return nil, 0, err
	}
	c.mu.Lock()
	c.views[key] = &consentView{consent: ver, snapshot: snap.Version, subjects: snap.Subjects, hidden: hidden}
	c.mu.Unlock()
	return hidden, ver, nil
}
