package ingest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
)

func TestSnakeCase(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"VisitorType": "visitor_type", "CustomerID": "customer_id", "Created at": "created_at",
		"N. Revenue (formatted)": "n_revenue_formatted", "ProductRelated_Duration": "product_related_duration",
		"IDNumber": "id_number", "Month": "month", "already_snake": "already_snake", " Page2Value ": "page2_value",
	} {
		if got := snakeCase(in); got != want {
			t.Errorf("snakeCase(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNormaliseMonths(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"June": "Jun", "Feb": "Feb", "sept 2024": "Sep 2024", "MARCH 3": "Mar 3", "Mayday": "Mayday", "2024-05-01": "2024-05-01",
	} {
		if got := normaliseMonths(in); got != want {
			t.Errorf("normaliseMonths(%q) = %q, want %q", in, got, want)
		}
	}
}

// sessionsSchema is a schema for sessions like the UCI Online Shoppers data set:
// a month name for the time, TRUE/FALSE flags, CamelCase columns.
func sessionsSchema() privalytics.Schema {
	return privalytics.Schema{Subject: "visitor", Time: "month", Columns: []privalytics.Column{
		{Name: "visitor", Type: privalytics.TypeString, Required: true},
		{Name: "month", Type: privalytics.TypeTimestamp, Required: true},
		{Name: "visitor_type", Type: privalytics.TypeString},
		{Name: "weekend", Type: privalytics.TypeBool},
		{Name: "revenue", Type: privalytics.TypeBool},
		{Name: "page_values", Type: privalytics.TypeFloat},
	}}
}

// TestForeignFile maps a sessions file without rewriting it: month names
// (full and short) with a year default, TRUE/FALSE, CamelCase names turned to
// snake_case, one column renamed.
func TestForeignFile(t *testing.T) {
	t.Parallel()
	conv := converterFor(t, sessionsSchema(), DefaultLimits())
	text := "SessionKey,Month,VisitorType,Weekend,Revenue,PageValues\n" +
		"s1,Feb,Returning_Visitor,FALSE,FALSE,0\n" +
		"s2,June,New_Visitor,TRUE,yes,12.5\n" +
		"s3,Sept,Other,no,1,0\n"
	m := Mapping{SnakeCase: true, Rename: map[string]string{"SessionKey": "visitor"},
		Fields: map[string]FieldSource{
			"visitor": {Column: "visitor"}, "month": {Column: "Month", Format: "Jan", Year: 2024, TimeZone: "Europe/Lisbon"},
			"visitor_type": {Column: "visitor_type"}, "weekend": {Column: "weekend"}, "revenue": {Column: "Revenue"}, "page_values": {Column: "page_values"},
		}}
	got, rep, err := collectCSV(t, conv, &m, 10, text)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		fmt.Sprintf("%d|2024-02-01 00:00:00Z|Returning_Visitor|false|false|0", subjectOf(t, "s1")),
		fmt.Sprintf("%d|2024-05-31 23:00:00Z|New_Visitor|true|true|12.5", subjectOf(t, "s2")), // Lisbon is UTC+1 in summer
		fmt.Sprintf("%d|2024-08-31 23:00:00Z|Other|false|true|0", subjectOf(t, "s3")),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if rep.Rows != 3 {
		t.Errorf("report %+v, want 3 rows", rep)
	}
	// Without fields, snake_case names must be the schema's fields.
	if _, _, err := collectCSV(t, conv, &Mapping{SnakeCase: true}, 10, "Visitor,Month,VisitorType,Weekend\ns1,2024-02-01T00:00:00Z,x,TRUE\n"); err != nil {
		t.Errorf("snake_case without fields: %v", err)
	}
}

// TestMappingRowErrors: every refused value is quoted in the error, with its
// line and field, and says what to change.
func TestMappingRowErrors(t *testing.T) {
	t.Parallel()
	conv := converterFor(t, sessionsSchema(), DefaultLimits())
	base := Mapping{Fields: map[string]FieldSource{"visitor": {Column: "V"}, "month": {Column: "M", Format: "Jan 2006"}, "weekend": {Column: "W"},
		"visitor_type": {Column: "T", Map: map[string]string{"r": "returning", "n": "new"}}}}
	tests := []struct {
		name, row string
		line      int
		field     string
		reason    string
	}{
		{"bool word", "v1,Feb 2024,maybe,r", 2, "weekend", `must be true or false (also TRUE/FALSE, yes/no, y/n, 1/0, on/off), got "maybe"`},
		{"month", "v1,Febuary 2024,TRUE,r", 2, "month", `must be a time like "Jan 2006" (the mapping's format), got "Febuary 2024"`},
		{"map", "v1,Feb 2024,TRUE,x", 2, "visitor_type", `"x" is not one of the mapping's map keys ("n", "r"); add it to map or set a default`},
	}
	for _, tt := range tests {
		_, _, err := collectCSV(t, conv, &base, 10, "V,M,W,T\n"+tt.row+"\n")
		e, ok := err.(*privalytics.Error)
		if !ok {
			t.Errorf("%s: %v, want a row error", tt.name, err)
			continue
		}
		if e.Details["line"] != tt.line || e.Details["field"] != tt.field || !strings.Contains(e.Message, tt.reason) {
			t.Errorf("%s: %v (details %v), want line %d field %q saying %q", tt.name, err, e.Details, tt.line, tt.field, tt.reason)
		}
	}
	// A layout without a year needs one.
	noYear := Mapping{Fields: map[string]FieldSource{"visitor": {Column: "V"}, "month": {Column: "M", Format: "Jan"}}}
	if _, _, err := collectCSV(t, conv, &noYear, 10, "V,M\nv1,Feb\n"); err == nil || !strings.Contains(err.Error(), `has no year; set year`) {
		t.Errorf("layout without a year: %v", err)
	}
	// Rules naming a column the file lacks list the file's columns.
	bad := Mapping{FillDown: &FillDown{Group: "Order", Columns: []string{"V"}}, Fields: map[string]FieldSource{"visitor": {Column: "V"}, "month": {Column: "M", Format: "Jan 2006"}}}
	if _, _, err := collectCSV(t, conv, &bad, 10, "V,M\nv1,Feb 2024\n"); err == nil || !strings.Contains(err.Error(), `fill_down group: source column "Order" is not in the file (its columns: "V", "M")`) {
		t.Errorf("missing group column: %v", err)
	}
}

// TestComputedFields: a sign from a status, joined and stripped cells, several
// layouts, exact products.
func TestComputedFields(t *testing.T) {
	t.Parallel()
	conv := testConverter(t)
	m := Mapping{
		TimeZone: "America/New_York",
		Skip:     []RowFilter{{Condition: Condition{Column: "State", Empty: true}, Reason: "no state"}},
		Fields: map[string]FieldSource{
			"customer_id": {Column: "Who"},
			"ts":          {Column: "Day", With: []string{"Clock"}, Format: "2006-01-02 15:04", Formats: []string{"02/01/2006 15:04"}},
			"type":        {Column: "State", Map: map[string]string{"ok": "purchase", "back": "refund"}},
			"quantity":    {Column: "N", NegateIf: &Condition{Column: "State", In: []string{"BACK"}}},
			"amount":      {Column: "Price", Times: "N", Strip: "$,", NegateIf: &Condition{Column: "State", In: []string{"back"}}},
		},
	}
	text := "Who,Day,Clock,State,N,Price\n" +
		"c1,2024-07-04,12:00,ok,3,\"$1,000.50\"\n" +
		"c2,05/07/2024,09:30,Back,2,$0.25\n" +
		"c3,2024-07-06,10:00,,1,$1\n"
	got, rep, err := collectCSV(t, conv, &m, 10, text)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		fmt.Sprintf("%d|2024-07-04 16:00:00Z|purchase|null|null|null|null|null|3|3001500|null", subjectOf(t, "c1")),
		fmt.Sprintf("%d|2024-07-05 13:30:00Z|refund|null|null|null|null|null|-2|-500|null", subjectOf(t, "c2")),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(ImportReport{Rows: 2, Skipped: 1, SkippedReasons: map[string]int{"no state": 1}}, rep); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
}

// TestFillDownNDJSON: fill-down works on NDJSON lines too, whose memory the
// reader reuses, and never crosses into the next group.
func TestFillDownNDJSON(t *testing.T) {
	t.Parallel()
	conv := testConverter(t)
	m := Mapping{SkipMissingSubject: true, FillDown: &FillDown{Group: "order", Columns: []string{"email", "at"}},
		Fields: map[string]FieldSource{"customer_id": {Column: "email"}, "ts": {Column: "at"}, "type": {Const: "purchase"}, "order_id": {Column: "order"}}}
	body := `{"order":"1","email":"a@x","at":"2024-01-01T00:00:00Z"}
{"order":"1"}
{"order":"2","at":"2024-01-02T00:00:00Z"}
{"order":"2"}
{"order":"1","email":"b@x","at":"2024-01-03T00:00:00Z"}
`
	var rows []string
	rep, err := ImportNDJSON(t.Context(), strings.NewReader(body), conv, &m, 10, func(r arrow.Record) error { rows = append(rows, values(r)...); return nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		fmt.Sprintf("%d|2024-01-01 00:00:00Z|purchase|null|null|null|null|1|null|null|null", subjectOf(t, "a@x")),
		fmt.Sprintf("%d|2024-01-01 00:00:00Z|purchase|null|null|null|null|1|null|null|null", subjectOf(t, "a@x")),
		fmt.Sprintf("%d|2024-01-03 00:00:00Z|purchase|null|null|null|null|1|null|null|null", subjectOf(t, "b@x")),
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if rep.Skipped != 2 || rep.SkippedReasons[ReasonNoSubject] != 2 {
		t.Errorf("report %+v, want 2 rows of order 2 skipped for no customer", rep)
	}
}
