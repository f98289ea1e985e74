package rights

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/privalytics/privalytics"
)

// CheckRectifiable refuses a correction the schema does not allow: no fields,
// the customer or time field (those are erased and sent again), or a field the
// schema does not declare. It reads only the request and the schema.
func CheckRectifiable(sch privalytics.Schema, fields map[string]json.RawMessage) error {
	if len(fields) == 0 {
		return privalytics.Errorf(privalytics.EINVALID, `name the fields to correct: {"fields": {"country": "FR"}}`)
	}
	for name := range fields {
		if name == sch.Subject || name == sch.Time {
			return privalytics.Errorf(privalytics.EINVALID, "field %q (the customer or the time) cannot be corrected; erase the events and send them again", name)
		}
		if _, ok := sch.Column(name); !ok {
			return privalytics.Errorf(privalytics.EINVALID, "field %q is not in the tenant's schema", name)
		}
	}
	return nil
}

// Rectify sets fields on every event of one customer. The new values are
// given as they would be sent to POST /v1/events (null clears an optional
// field) and pass the same checks, through check, as ingested events.
// ENOTFOUND when no events are stored for the customer.
func (s *Service) Rectify(ctx context.Context, a Actor, sub Subject, check Checker, fields map[string]json.RawMessage) (privalytics.ErasureReceipt, error) {
	sch := sub.Tenant.Schema
	if err := CheckRectifiable(sch, fields); err != nil {
		return privalytics.ErasureReceipt{}, err
	}
	rec, err := s.d.Events.SubjectEvents(ctx, sub.Tenant.ID, sch, sub.Pseudonym)
	if err != nil {
		return privalytics.ErasureReceipt{}, err
	}
	if rec.NumRows() == 0 {
		return privalytics.ErasureReceipt{}, privalytics.Errorf(privalytics.ENOTFOUND, "no events are stored for this customer")
	}
	set, err := checkedValues(sub, check, rec, fields, s.d.Now())
	if err != nil {
		return privalytics.ErasureReceipt{}, err
	}
	rc, err := s.d.Events.Rectify(ctx, sub.Tenant.ID, sch, sub.Pseudonym, set)
	if err != nil {
		return rc, err
	}
	s.erased(ctx, a, "rectify", rc)
	return rc, nil
}

// checkedValues checks the new values as an ingested event would be: one of
// the customer's events with the fields replaced goes through check, and the
// checked cells come back in the Go types SubjectStore.Rectify takes.
func checkedValues(sub Subject, check Checker, rec arrow.Record, fields map[string]json.RawMessage, now time.Time) (map[string]any, error) {
	exp := exportOf(sub.Tenant, sub.CustomerID, rec, now)
	ev := make(map[string]any, len(exp.Events[0])+len(fields))
	for k, v := range exp.Events[0] {
		ev[k] = v
	}
	for k, v := range fields {
		ev[k] = v
	}
	row, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	checked, err := check.DecodeJSON(row)
	if err != nil {
		return nil, err
	}
	set := map[string]any{}
	stored := sub.Tenant.Schema.Stored()
	for name := range fields {
		i := slices.IndexFunc(stored, func(col privalytics.Column) bool { return col.Name == name })
		set[name] = storedValue(checked.Column(i), 0)
	}
	return set, nil
}

// storedValue is a cell in the Go type SubjectStore.Rectify takes.
func storedValue(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Dictionary:
		return a.Dictionary().(*array.String).Value(a.GetValueIndex(i))
	case *array.Int64:
		return a.Value(i)
	case *array.Float64:
		return a.Value(i)
	case *array.Boolean:
		return a.Value(i)
	case *array.Timestamp:
		return time.UnixMicro(int64(a.Value(i))).UTC()
	}
	return nil
}
