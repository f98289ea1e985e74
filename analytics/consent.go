package analytics

import (
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
