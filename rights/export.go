package rights

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/privalytics/privalytics"
)

// Export is everything held about one customer: every stored field of their
// events, under the schema's names and in the schema's order, in time order,
// with the customer's identifier as the business knows it (never the stored
// pseudonym). Its fields are those of wire.SubjectExport, which api converts
// it to.
type Export struct {
	Tenant     string           `json:"tenant"`
	CustomerID string           `json:"customer_id"`
	ExportedAt time.Time        `json:"exported_at"`
	Rows       int              `json:"rows"`
	Columns    []string         `json:"columns"`
	Events     []map[string]any `json:"events"`
}

// Export returns everything held about one customer, and records that it was
// read (the row count, never the customer).
func (s *Service) Export(ctx context.Context, a Actor, sub Subject) (*Export, error) {
	rec, err := s.d.Events.SubjectEvents(ctx, sub.Tenant.ID, sub.Tenant.Schema, sub.Pseudonym)
	var details map[string]string
	if err == nil {
		details = map[string]string{"rows": strconv.FormatInt(rec.NumRows(), 10)}
	}
	if aerr := s.record(ctx, a, sub.Tenant.ID, AuditExport, "", err, details); err == nil && aerr != nil {
		return nil, aerr // personal data leaves only on the record
	}
	if err != nil {
		return nil, err
	}
	return exportOf(sub.Tenant, sub.CustomerID, rec, s.d.Now().UTC()), nil
}

// WriteCSV writes the export as CSV: a header of the columns, then one line
// per event.
func (e *Export) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(e.Columns); err != nil {
		return err
	}
	row := make([]string, len(e.Columns))
	for _, ev := range e.Events {
		for i, col := range e.Columns {
			row[i] = csvCell(ev[col])
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// exportOf turns a subject's stored rows into the export, in time order, with
// the columns in the schema's declared order.
func exportOf(t *privalytics.Tenant, customerID string, rec arrow.Record, now time.Time) *Export {
	stored := t.Schema.Stored()
	exp := &Export{Tenant: t.ID, CustomerID: customerID, ExportedAt: now, Rows: int(rec.NumRows()), Events: []map[string]any{}}
	idx := map[string]int{}
	for i, col := range stored {
		idx[col.Name] = i
	}
	idx[t.Schema.Subject] = 0
	for _, col := range t.Schema.Columns {
		exp.Columns = append(exp.Columns, col.Name)
	}
	order := make([]int, rec.NumRows())
	for i := range order {
		order[i] = i
	}
	ts := rec.Column(1).(*array.Timestamp).TimestampValues()
	slices.SortStableFunc(order, func(a, b int) int { return int(min(max(ts[a]-ts[b], -1), 1)) })
	for _, r := range order {
		ev := make(map[string]any, len(exp.Columns))
		for _, col := range t.Schema.Columns {
			i := idx[col.Name]
			if i == 0 {
				ev[col.Name] = customerID
				continue
			}
			ev[col.Name] = exportValue(stored[i], rec.Column(i), r)
		}
		exp.Events = append(exp.Events, ev)
	}
	return exp
}

// exportValue is one stored cell as the business sent it: strings, integers,
// decimals as exact numbers, floats, booleans, times in RFC 3339 (UTC); nil for null.
func exportValue(col privalytics.Column, a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Dictionary:
		return a.Dictionary().(*array.String).Value(a.GetValueIndex(i))
	case *array.Int64:
		if col.Type == privalytics.TypeDecimal {
			return json.Number(decimalText(a.Value(i), col.Scale))
		}
		return a.Value(i)
	case *array.Float64:
		return a.Value(i)
	case *array.Boolean:
		return a.Value(i)
	case *array.Timestamp:
		return time.UnixMicro(int64(a.Value(i))).UTC().Format(time.RFC3339Nano)
	}
	return nil
}

// decimalText writes v × 10^-scale exactly.
func decimalText(v int64, scale int) string {
	neg := v < 0
	u := uint64(v)
	if neg {
		u = -u
	}
	digits := strconv.FormatUint(u, 10)
	if scale > 0 {
		if len(digits) <= scale {
			digits = strings.Repeat("0", scale-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	}
	if neg {
		return "-" + digits
	}
	return digits
}

func csvCell(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return string(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}
