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
//	{"fields": {"customer_id": {"column": "CustomerID"},
//	            "ts":     {"column": "InvoiceDate", "format": "2006-01-02 15:04:05", "time_zone": "Europe/London"},
//	            "type":   {"column": "InvoiceNo", "prefix": {"C": "refund"}, "default": "purchase"},
//	            "amount": {"column": "Quantity", "times": "UnitPrice"}},
//	 "skip_missing_subject": true}
//
// Keys of "fields" are the schema's field names. Source columns that no field
// names are not imported (minimisation). Without a mapping (nil, or no fields),
// the source's column names must be the schema's field names, and every source
// column must be one.
type Mapping struct {
	Fields map[string]FieldSource `json:"fields"`
	// SkipMissingSubject skips (and counts, in ImportReport.SkippedReasons) rows
	// with an empty customer identifier instead of failing on them: such rows have
	// no privacy unit and cannot be stored.
	SkipMissingSubject bool `json:"skip_missing_subject,omitempty"`
}

// FieldSource says where one field's value comes from: a source column, or a
// constant, then optionally transformed.
type FieldSource struct {
	// Column is the source column (CSV header name, Parquet column, NDJSON key).
	Column string `json:"column,omitempty"`
	// Const is a constant value for every row, instead of a column.
	Const string `json:"const,omitempty"`
	// Format is the Go time layout of a text timestamp column, e.g.
	// "2006-01-02 15:04:05". Without it, timestamps are RFC 3339 or Unix seconds.
	Format string `json:"format,omitempty"`
	// TimeZone is the IANA zone of timestamps whose Format has no zone, e.g.
	// "Europe/London" (daylight saving time included). Default UTC.
	TimeZone string `json:"time_zone,omitempty"`
	// Times names a second source column to multiply Column by, in exact decimal
	// arithmetic: amount = Quantity × UnitPrice. The product must fit the field's
	// scale exactly.
	Times string `json:"times,omitempty"`
	// Prefix classifies Column's value by how it starts: the value of the longest
	// key that is a prefix of it, else Default. {"C": "refund"} with Default
	// "purchase" reads UCI invoice numbers as event types.
	Prefix map[string]string `json:"prefix,omitempty"`
	// Default is the value when no Prefix key matches ("" leaves the field empty).
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
		if f.Const != "" && (f.Times != "" || len(f.Prefix) > 0 || f.Format != "") {
			problems = append(problems, fmt.Sprintf("field %q: times, prefix and format apply to a column, not a const", n))
		}
		if f.Times != "" && len(f.Prefix) > 0 {
			problems = append(problems, fmt.Sprintf("field %q: times and prefix cannot be combined", n))
		}
		if f.Default != "" && len(f.Prefix) == 0 {
			problems = append(problems, fmt.Sprintf("field %q: default applies with prefix only", n))
		}
		if f.TimeZone != "" {
			if _, err := time.LoadLocation(f.TimeZone); err != nil {
				problems = append(problems, fmt.Sprintf("field %q: unknown time zone %q; use an IANA name like Europe/London", n, f.TimeZone))
			}
		}
	}
	if len(problems) > 0 {
		return privalytics.Errorf(privalytics.EINVALID, "mapping: %s", strings.Join(problems, "; "))
	}
	return nil
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
