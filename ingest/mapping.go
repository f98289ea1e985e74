package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/privalytics/privalytics"
)

// Mapping maps a source file's columns to the tenant's fields. It is JSON, so a
// business can keep one per source system (ParseMapping, LoadMapping):
//
//	{"fields": {"customer_id": {"column": "Email"},
//	            "ts":     {"column": "Created at", "format": "2006-01-02 15:04:05 -0700"},
//	            "type":   {"column": "Financial Status", "map": {"refunded": "refund"}, "default": "purchase"},
//	            "amount": {"column": "Lineitem price", "times": "Lineitem quantity",
//	                       "negate_if": {"column": "Financial Status", "in": ["refunded"]}}},
//	 "fill_down": {"group": "Name", "columns": ["Email", "Created at", "Financial Status"]},
//	 "skip": [{"column": "Financial Status", "in": ["voided"], "reason": "voided order"}],
//	 "skip_missing_subject": true}
//
// A row goes through the steps in this order: fill-down, skip rules, then each
// field. Keys of "fields" are the schema's field names. Source columns that no
// field names are not imported (minimisation). Without fields, the source's
// column names (after Rename and SnakeCase) must be the schema's field names,
// and every source column must be one.
type Mapping struct {
	Fields map[string]FieldSource `json:"fields,omitempty"`
	// SkipMissingSubject skips (and counts, in ImportReport.SkippedReasons) rows
	// with an empty customer identifier instead of failing on them: such rows have
	// no privacy unit and cannot be stored.
	SkipMissingSubject bool `json:"skip_missing_subject,omitempty"`
	// Rename renames source columns (header name → new name) before anything
	// else, e.g. {"VisitorType": "visitor_type"}. Fields may name a column by
	// its original or its new name.
	Rename map[string]string `json:"rename,omitempty"`
	// SnakeCase renames every source column not in Rename to snake_case
	// ("VisitorType" → "visitor_type", "Created at" → "created_at"), so a file
	// whose columns differ from the schema's only in spelling imports without
	// fields.
	SnakeCase bool `json:"snake_case,omitempty"`
	// FillDown fills empty cells from the row above within a group: exports that
	// write an order's details only on its first line (Shopify) need it.
	FillDown *FillDown `json:"fill_down,omitempty"`
	// Skip drops rows that match any rule, counted in ImportReport.SkippedReasons
	// under the rule's reason (Stripe's failed payments, cancelled orders).
	Skip []RowFilter `json:"skip,omitempty"`
	// TimeZone is the IANA zone of every timestamp field that names none
	// (default UTC); presets leave it to the shop (privalytics ingest --time-zone).
	TimeZone string `json:"time_zone,omitempty"`
}

// FillDown fills the empty cells of Columns with the value the column last had
// in the same group: the rows that share the value of the Group column (an
// order number). A cell of a new group is never filled from the group before,
// so one customer's email cannot leak into the next order.
type FillDown struct {
	Group   string   `json:"group"`
	Columns []string `json:"columns"`
}

// Condition matches a row by one source column's value, compared without
// regard to case and surrounding spaces.
type Condition struct {
	Column string `json:"column"`
	// In matches when the value is one of these.
	In []string `json:"in,omitempty"`
	// NotIn matches when the value is none of these.
	NotIn []string `json:"not_in,omitempty"`
	// Empty matches an empty (or all-space) cell.
	Empty bool `json:"empty,omitempty"`
}

// RowFilter is a skip rule: rows matching the condition are left out and
// counted under Reason.
type RowFilter struct {
	Condition
	// Reason names the rule in the import report, e.g. "failed payment".
	Reason string `json:"reason"`
}

// FieldSource says where one field's value comes from: a source column, or a
// constant, then optionally transformed.
type FieldSource struct {
	// Column is the source column (CSV header name, Parquet column, NDJSON key).
	Column string `json:"column,omitempty"`
	// Const is a constant value for every row, instead of a column.
	Const string `json:"const,omitempty"`
	// With names further columns whose values are appended to Column's, with a
	// space between: a date column and a time column make one timestamp.
	With []string `json:"with,omitempty"`
	// Strip lists characters removed from the value before it is read: currency
	// symbols and thousands separators ("$,"), so "-$1,250.00" reads as -1250.00.
	Strip string `json:"strip,omitempty"`
	// Format is the Go time layout of a text timestamp column, e.g.
	// "2006-01-02 15:04:05". Without it, timestamps are RFC 3339 or Unix seconds.
	// "Jan" in a layout also reads full month names ("June", "Sept"), in any case.
	Format string `json:"format,omitempty"`
	// Formats are further layouts tried in order when Format does not fit.
	Formats []string `json:"formats,omitempty"`
	// Year is the year of timestamps whose layout has none ("Jan 2" or "Jan"
	// for a month name alone); without it such a layout is refused.
	Year int `json:"year,omitempty"`
	// TimeZone is the IANA zone of timestamps whose Format has no zone, e.g.
	// "Europe/London" (daylight saving time included). Default: the mapping's
	// TimeZone, else UTC.
	TimeZone string `json:"time_zone,omitempty"`
	// Times names a second source column to multiply Column by, in exact decimal
	// arithmetic: amount = Quantity × UnitPrice. The product must fit the field's
	// scale exactly.
	Times string `json:"times,omitempty"`
	// NegateIf makes a number negative (or a negative one positive) on rows that
	// match: the amount of a refunded order counts against revenue.
	NegateIf *Condition `json:"negate_if,omitempty"`
	// Prefix classifies Column's value by how it starts: the value of the longest
	// key that is a prefix of it, else Default. {"C": "refund"} with Default
	// "purchase" reads UCI invoice numbers as event types.
	Prefix map[string]string `json:"prefix,omitempty"`
	// Map replaces Column's value by the value of the key it equals (without
	// regard to case): {"Paid": "purchase", "Refunded": "refund"}. A value that
	// is no key takes Default, or stops the import naming it when Default is "".
	Map map[string]string `json:"map,omitempty"`
	// Default is the value when no Prefix key matches ("" leaves the field
	// empty), or when no Map key matches.
	Default string `json:"default,omitempty"`
}

// Validate reports every problem of the mapping on its own (the file's header and
// the schema are checked when an import starts).
func (m Mapping) Validate() error {
	var problems []string
	names := make([]string, 0, len(m.Fields))
	for n := range m.Fields {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := m.Fields[n]
		switch {
		case f.Column == "" && f.Const == "":
			problems = append(problems, fmt.Sprintf("field %q: set column or const", n))
		case f.Column != "" && f.Const != "":
			problems = append(problems, fmt.Sprintf("field %q: set column or const, not both", n))
		}
		if f.Const != "" && (f.Times != "" || len(f.Prefix) > 0 || len(f.Map) > 0 || f.Format != "" || len(f.With) > 0 || f.NegateIf != nil) {
			problems = append(problems, fmt.Sprintf("field %q: times, prefix, map, format, with and negate_if apply to a column, not a const", n))
		}
		if f.Times != "" && (len(f.Prefix) > 0 || len(f.Map) > 0) {
			problems = append(problems, fmt.Sprintf("field %q: times cannot be combined with prefix or map", n))
		}
		if len(f.Prefix) > 0 && len(f.Map) > 0 {
			problems = append(problems, fmt.Sprintf("field %q: use prefix or map, not both", n))
		}
		if f.Default != "" && len(f.Prefix) == 0 && len(f.Map) == 0 {
			problems = append(problems, fmt.Sprintf("field %q: default applies with prefix or map only", n))
		}
		if len(f.Formats) > 0 && f.Format == "" {
			problems = append(problems, fmt.Sprintf("field %q: formats are tried after format; set format first", n))
		}
		if f.Year != 0 && (f.Year < 1 || f.Year > 9999) {
			problems = append(problems, fmt.Sprintf("field %q: year must be 1..9999, got %d", n, f.Year))
		}
		if f.NegateIf != nil {
			problems = append(problems, f.NegateIf.problems(fmt.Sprintf("field %q: negate_if", n))...)
		}
		if f.TimeZone != "" {
			if _, err := time.LoadLocation(f.TimeZone); err != nil {
				problems = append(problems, fmt.Sprintf("field %q: unknown time zone %q; use an IANA name like Europe/London", n, f.TimeZone))
			}
		}
	}
	if m.TimeZone != "" {
		if _, err := time.LoadLocation(m.TimeZone); err != nil {
			problems = append(problems, fmt.Sprintf("time_zone: unknown time zone %q; use an IANA name like Europe/London", m.TimeZone))
		}
	}
	if fd := m.FillDown; fd != nil {
		if fd.Group == "" {
			problems = append(problems, "fill_down: set group, the column that tells one order (or group) from the next; filling down across groups would give one customer's details to the next")
		}
		if len(fd.Columns) == 0 {
			problems = append(problems, "fill_down: list the columns to fill")
		}
	}
	for i, r := range m.Skip {
		problems = append(problems, r.Condition.problems(fmt.Sprintf("skip[%d]", i))...)
		if r.Reason == "" {
			problems = append(problems, fmt.Sprintf("skip[%d]: set reason, the name the import report counts the skipped rows under", i))
		}
	}
	seen := map[string]string{}
	for from, to := range m.Rename {
		if to == "" {
			problems = append(problems, fmt.Sprintf("rename: %q is renamed to nothing", from))
		} else if other, dup := seen[to]; dup {
			problems = append(problems, fmt.Sprintf("rename: %q and %q are both renamed to %q", min(from, other), max(from, other), to))
		}
		seen[to] = from
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return privalytics.Errorf(privalytics.EINVALID, "mapping: %s", strings.Join(problems, "; "))
	}
	return nil
}

func (c Condition) problems(where string) []string {
	var out []string
	if c.Column == "" {
		out = append(out, where+": set column")
	}
	set := 0
	for _, b := range []bool{len(c.In) > 0, len(c.NotIn) > 0, c.Empty} {
		if b {
			set++
		}
	}
	if set != 1 {
		out = append(out, where+": set exactly one of in, not_in and empty")
	}
	return out
}

// ParseMapping reads a JSON mapping, refusing unknown keys (a typo would
// otherwise silently drop a field), and validates it.
func ParseMapping(data []byte) (Mapping, error) {
	var m Mapping
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Mapping{}, privalytics.Errorf(privalytics.EINVALID, "mapping: not valid: %v", err)
	}
	return m, m.Validate()
}

// LoadMapping reads a JSON mapping file (see ParseMapping).
func LoadMapping(path string) (Mapping, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Mapping{}, privalytics.Errorf(privalytics.EINVALID, "mapping: %v", err)
	}
	return ParseMapping(data)
}

// UCIOnlineRetailMapping maps the UCI "Online Retail" data set (Chen, Sain and Guo,
// 2012, CC BY 4.0) to the default retail schema: subject = CustomerID, ts =
// InvoiceDate (UK local time), type = refund for invoices starting with "C" else
// purchase, order_id = InvoiceNo, product = StockCode, quantity = Quantity,
// amount = Quantity × UnitPrice (exact, scale 3), country = Country. Description
// is free text and is not imported. Guest checkouts (no CustomerID) are skipped
// and counted.
func UCIOnlineRetailMapping() Mapping {
	return Mapping{
		SkipMissingSubject: true,
		Fields: map[string]FieldSource{
			"customer_id": {Column: "CustomerID"},
			"ts":          {Column: "InvoiceDate", Format: "2006-01-02 15:04:05", TimeZone: "Europe/London"},
			"type":        {Column: "InvoiceNo", Prefix: map[string]string{"C": privalytics.EventRefund}, Default: privalytics.EventPurchase},
			"order_id":    {Column: "InvoiceNo"},
			"product":     {Column: "StockCode"},
			"quantity":    {Column: "Quantity"},
			"amount":      {Column: "Quantity", Times: "UnitPrice"},
			"country":     {Column: "Country"},
		},
	}
}

// ResolveMapping reads a mapping named on a command line: a JSON file (a name
// ending in .json) or a preset's name.
func ResolveMapping(spec string) (Mapping, error) {
	if strings.HasSuffix(spec, ".json") {
		return LoadMapping(spec)
	}
	return PresetMapping(spec)
}
