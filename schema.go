package privalytics

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
)

// ColumnType is the declared type of an event field.
type ColumnType string

const (
	TypeString    ColumnType = "string"    // UTF-8; stored dictionary-encoded
	TypeInt       ColumnType = "int"       // int64
	TypeDecimal   ColumnType = "decimal"   // exact fixed point, stored as int64 scaled by 10^Scale
	TypeFloat     ColumnType = "float"     // float64; prefer decimal for money
	TypeTimestamp ColumnType = "timestamp" // RFC 3339 text or Unix seconds; stored as µs since the epoch, UTC
	TypeBool      ColumnType = "bool"
)

// SubjectColumn is the stored name of the pseudonymised customer identifier: the
// first 8 bytes of HMAC-SHA256(tenant key, raw identifier) as a uint64. The raw
// identifier is never stored.
const SubjectColumn = "subject"

// Column declares one field of a tenant's events.
type Column struct {
	Name        string     `json:"name"`
	Type        ColumnType `json:"type"`
	Required    bool       `json:"required,omitempty"`
	Allowed     []string   `json:"allowed,omitempty"`    // strings only: the closed set of values; group keys on such a column are public
	MaxLength   int        `json:"max_length,omitempty"` // strings only: longest value in bytes (0 means the server default)
	Scale       int        `json:"scale,omitempty"`      // decimal only: digits after the point, 0..9
	FreeText    bool       `json:"free_text,omitempty"`  // strings only: scanned for stray personal data
	Description string     `json:"description,omitempty"`
}

// Schema declares a tenant's events: which fields exist, their types and limits.
// Fields not declared are rejected at ingest (data minimisation).
type Schema struct {
	// Subject names the input field that identifies the customer (the privacy
	// unit). It must be a required string column; it is stored only as a keyed hash.
	Subject string `json:"subject"`
	// Time names the event-time field; it must be a required timestamp column.
	Time    string   `json:"time"`
	Columns []Column `json:"columns"`
}

// Event types of the default retail schema.
const (
	EventPurchase  = "purchase"
	EventRefund    = "refund"
	EventView      = "view"
	EventAddToCart = "add_to_cart"
	EventVisit     = "visit"
)

// DefaultRetailSchema is the schema a tenant gets when it declares none: purchases
// and behavioural events of a shop or franchise.
func DefaultRetailSchema() Schema {
	return Schema{
		Subject: "customer_id",
		Time:    "ts",
		Columns: []Column{
			{Name: "customer_id", Type: TypeString, Required: true, MaxLength: 128, Description: "the customer's identifier in your systems; stored only as a keyed hash"},
			{Name: "ts", Type: TypeTimestamp, Required: true, Description: "when the event happened"},
			{Name: "type", Type: TypeString, Required: true, Allowed: []string{EventPurchase, EventRefund, EventView, EventAddToCart, EventVisit}, Description: "what happened"},
			{Name: "store", Type: TypeString, MaxLength: 64, Description: "the shop, location or site"},
			{Name: "channel", Type: TypeString, Allowed: []string{"web", "app", "store"}, Description: "where the customer interacted"},
			{Name: "category", Type: TypeString, MaxLength: 64, Description: "product category"},
			{Name: "product", Type: TypeString, MaxLength: 64, Description: "product code"},
			{Name: "order_id", Type: TypeString, MaxLength: 64, Description: "order or invoice number"},
			{Name: "quantity", Type: TypeInt, Description: "items in the line"},
			{Name: "amount", Type: TypeDecimal, Scale: 3, Description: "value of the line in the shop's currency"},
			{Name: "country", Type: TypeString, MaxLength: 64, Description: "the customer's country"},
		},
	}
}

var columnName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// Validate reports every problem with the schema at once.
func (s Schema) Validate() error {
	var problems []string
	seen := map[string]bool{}
	for i, c := range s.Columns {
		if !columnName.MatchString(c.Name) {
			problems = append(problems, fmt.Sprintf("columns[%d]: name %q must be lower-case letters, digits and _, starting with a letter, at most 63 long", i, c.Name))
		}
		if c.Name == SubjectColumn {
			problems = append(problems, fmt.Sprintf("columns[%d]: %q is reserved for the pseudonymised customer identifier", i, c.Name))
		}
		if seen[c.Name] {
			problems = append(problems, fmt.Sprintf("columns[%d]: duplicate column %q", i, c.Name))
		}
		seen[c.Name] = true
		switch c.Type {
		case TypeString:
		case TypeInt, TypeFloat, TypeTimestamp, TypeBool, TypeDecimal:
			if len(c.Allowed) > 0 || c.MaxLength != 0 || c.FreeText {
				problems = append(problems, fmt.Sprintf("columns[%d] %s: allowed, max_length and free_text apply to string columns only", i, c.Name))
			}
		default:
			problems = append(problems, fmt.Sprintf("columns[%d] %s: type %q is not one of string, int, decimal, float, timestamp, bool", i, c.Name, c.Type))
		}
		if c.Type == TypeDecimal && (c.Scale < 0 || c.Scale > 9) {
			problems = append(problems, fmt.Sprintf("columns[%d] %s: scale must be 0..9, got %d", i, c.Name, c.Scale))
		} else if c.Type != TypeDecimal && c.Scale != 0 {
			problems = append(problems, fmt.Sprintf("columns[%d] %s: scale applies to decimal columns only", i, c.Name))
		}
		if c.MaxLength < 0 {
			problems = append(problems, fmt.Sprintf("columns[%d] %s: max_length must be >= 0", i, c.Name))
		}
	}
	if subj, ok := s.Column(s.Subject); !ok {
		problems = append(problems, fmt.Sprintf("subject %q must name a declared column", s.Subject))
	} else if subj.Type != TypeString || !subj.Required {
		problems = append(problems, fmt.Sprintf("subject column %q must be a required string", s.Subject))
	}
	if ts, ok := s.Column(s.Time); !ok {
		problems = append(problems, fmt.Sprintf("time %q must name a declared column", s.Time))
	} else if ts.Type != TypeTimestamp || !ts.Required {
		problems = append(problems, fmt.Sprintf("time column %q must be a required timestamp", s.Time))
	}
	if len(s.Columns) > 64 {
		problems = append(problems, fmt.Sprintf("at most 64 columns, got %d", len(s.Columns)))
	}
	if len(problems) > 0 {
		return Errorf(EINVALID, "schema: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Column returns the declared column with the given input name.
func (s Schema) Column(name string) (Column, bool) {
	for _, c := range s.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// Stored returns the columns as they are stored, in order: the subject column
// first (renamed SubjectColumn), the time column second, then the rest in
// declaration order. Arrow records of the tenant follow this order.
func (s Schema) Stored() []Column {
	out := make([]Column, 0, len(s.Columns))
	subj, _ := s.Column(s.Subject)
	subj.Name = SubjectColumn
	ts, _ := s.Column(s.Time)
	out = append(out, subj, ts)
	for _, c := range s.Columns {
		if c.Name != s.Subject && c.Name != s.Time {
			out = append(out, c)
		}
	}
	return out
}

// Arrow returns the Arrow schema of the tenant's stored record batches (see Stored):
// subject uint64, time timestamp[µs, UTC], strings dictionary<int32, utf8>, ints and
// decimals int64, floats float64, bools boolean. Optional columns are nullable.
func (s Schema) Arrow() *arrow.Schema {
	cols := s.Stored()
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		f := arrow.Field{Name: c.Name, Nullable: !c.Required}
		switch {
		case i == 0:
			f.Type, f.Nullable = arrow.PrimitiveTypes.Uint64, false
		case c.Type == TypeTimestamp:
			f.Type = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
		case c.Type == TypeString:
			f.Type = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
		case c.Type == TypeInt || c.Type == TypeDecimal:
			f.Type = arrow.PrimitiveTypes.Int64
		case c.Type == TypeFloat:
			f.Type = arrow.PrimitiveTypes.Float64
		case c.Type == TypeBool:
			f.Type = arrow.FixedWidthTypes.Boolean
		}
		if c.Type == TypeDecimal {
			f.Metadata = arrow.NewMetadata([]string{"scale"}, []string{fmt.Sprint(c.Scale)})
		}
		fields[i] = f
	}
	return arrow.NewSchema(fields, nil)
}
