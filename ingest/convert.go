// Package ingest turns incoming events into a tenant's Arrow record batches:
// decode (NDJSON, a JSON array, CSV, Parquet) → validate against the tenant's
// schema → minimise (undeclared fields are rejected) → pseudonymise the customer
// identifier (HMAC-SHA256 under the tenant's key) → Arrow. A batch is converted
// whole or not at all: the first bad row stops it with an error naming the line,
// the field and the reason.
package ingest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/privalytics/privalytics"
)

// Limits bound one batch. The server sets them from its configuration.
type Limits struct {
	MaxRows        int // rows per batch; ETOOLARGE above
	MaxStringBytes int // longest string for columns without max_length
}

// DefaultLimits: 100,000 rows per batch, 256-byte strings.
func DefaultLimits() Limits { return Limits{MaxRows: 100_000, MaxStringBytes: 256} }

// Pseudonymiser maps a raw customer identifier to the stored subject: the first 8
// bytes (big-endian) of HMAC-SHA256(key, identifier). Without the key, which never
// leaves the server, the subject cannot be linked back to the identifier; with it,
// the business can find one customer's data for access and erasure requests.
type Pseudonymiser struct {
	pool sync.Pool
}

// NewPseudonymiser returns a pseudonymiser for a 32-byte tenant key.
func NewPseudonymiser(key []byte) (*Pseudonymiser, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("ingest: pseudonymisation key must be 32 bytes, got %d", len(key))
	}
	k := append([]byte(nil), key...)
	return &Pseudonymiser{pool: sync.Pool{New: func() any { return hmac.New(sha256.New, k) }}}, nil
}

// Subject returns the pseudonym of id. Safe for concurrent use.
func (p *Pseudonymiser) Subject(id []byte) uint64 {
	h := p.pool.Get().(hash.Hash)
	h.Reset()
	h.Write(id)
	var sum [sha256.Size]byte
	out := binary.BigEndian.Uint64(h.Sum(sum[:0]))
	p.pool.Put(h)
	return out
}

// Converter converts rows of one tenant. It is safe for concurrent use: every
// call works on its own batch state.
type Converter struct {
	schema  privalytics.Schema
	cols    []privalytics.Column // stored order; cols[0] is the subject
	arrow   *arrow.Schema
	byName  map[string]int // input field name → stored index
	allowed []map[string]bool
	maxLen  []int
	pseudo  *Pseudonymiser
	limits  Limits
}

// NewConverter prepares conversion into schema.Arrow().
func NewConverter(schema privalytics.Schema, p *Pseudonymiser, lim Limits) (*Converter, error) {
	if err := schema.Validate(); err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fmt.Errorf("ingest: a pseudonymiser is required")
	}
	if lim.MaxRows <= 0 {
		lim.MaxRows = DefaultLimits().MaxRows
	}
	if lim.MaxStringBytes <= 0 {
		lim.MaxStringBytes = DefaultLimits().MaxStringBytes
	}
	c := &Converter{schema: schema, cols: schema.Stored(), arrow: schema.Arrow(), byName: map[string]int{}, pseudo: p, limits: lim}
	c.allowed = make([]map[string]bool, len(c.cols))
	c.maxLen = make([]int, len(c.cols))
	for i, col := range c.cols {
		name := col.Name
		if i == 0 {
			name = schema.Subject
		}
		c.byName[name] = i
		if len(col.Allowed) > 0 {
			c.allowed[i] = map[string]bool{}
			for _, a := range col.Allowed {
				c.allowed[i][a] = true
			}
		}
		c.maxLen[i] = col.MaxLength
		if c.maxLen[i] == 0 {
			c.maxLen[i] = lim.MaxStringBytes
		}
	}
	return c, nil
}

// Schema returns the tenant schema the converter validates against.
func (c *Converter) Schema() privalytics.Schema { return c.schema }

// rowError builds the error for a bad row. line is 1-based.
func rowError(line int, field, reason string) error {
	msg := fmt.Sprintf("line %d", line)
	if field != "" {
		msg += fmt.Sprintf(", field %q", field)
	}
	e := privalytics.Errorf(privalytics.EINVALID, "%s: %s; nothing of this batch was stored", msg, reason).With("line", line)
	if field != "" {
		e = e.With("field", field)
	}
	return e.With("reason", reason)
}

// batch accumulates one record's columns.
type batch struct {
	c    *Converter
	rows int
	// column buffers, indexed by stored column
	u64   []uint64
	i64   [][]int64
	f64   [][]float64
	bools [][]bool
	dict  []map[string]int32
	dvals [][]string
	idx   [][]int32
	valid [][]bool
	seen  uint64 // columns set in the current row
	// pseudonyms memoises the keyed hash per customer within this batch: busy
	// customers appear many times in one batch, and HMAC is the costliest step.
	// It lives only as long as the batch.
	pseudonyms map[string]uint64
}

func (c *Converter) newBatch(capacity int) *batch {
	n := len(c.cols)
	b := &batch{c: c, i64: make([][]int64, n), f64: make([][]float64, n), bools: make([][]bool, n),
		dict: make([]map[string]int32, n), dvals: make([][]string, n), idx: make([][]int32, n), valid: make([][]bool, n)}
	b.u64 = make([]uint64, 0, capacity)
	b.pseudonyms = make(map[string]uint64, min(capacity, 1<<12))
	for i, col := range c.cols {
		if i == 0 {
			continue
		}
		b.valid[i] = make([]bool, 0, capacity)
		switch col.Type {
		case privalytics.TypeString:
			b.dict[i] = map[string]int32{}
			b.idx[i] = make([]int32, 0, capacity)
		case privalytics.TypeFloat:
			b.f64[i] = make([]float64, 0, capacity)
		case privalytics.TypeBool:
			b.bools[i] = make([]bool, 0, capacity)
		default:
			b.i64[i] = make([]int64, 0, capacity)
		}
	}
	return b
}

// set stores one field value of the current row; line and name are for errors.
func (b *batch) set(i int, v value, line int, name string) error {
	if b.seen&(1<<uint(i)) != 0 {
		return rowError(line, name, "the field appears twice")
	}
	if v.kind == kindNull {
		return nil // absent; checked in endRow
	}
	col := &b.c.cols[i]
	if i == 0 {
		if v.kind != kindString && v.kind != kindNumber {
			return rowError(line, name, "the customer identifier must be a string")
		}
		if len(v.raw) == 0 {
			return rowError(line, name, "the customer identifier is empty")
		}
		if len(v.raw) > b.c.maxLen[0] {
			return rowError(line, name, fmt.Sprintf("longer than %d bytes", b.c.maxLen[0]))
		}
		subj, ok := b.pseudonyms[string(v.raw)]
		if !ok {
			subj = b.c.pseudo.Subject(v.raw)
			if len(b.pseudonyms) < 1<<16 {
				b.pseudonyms[string(v.raw)] = subj
			}
		}
		b.u64 = append(b.u64, subj)
		b.seen |= 1
		return nil
	}
	switch col.Type {
	case privalytics.TypeString:
		if v.kind != kindString {
			return rowError(line, name, "must be a string")
		}
		if len(v.raw) > b.c.maxLen[i] {
			return rowError(line, name, fmt.Sprintf("longer than %d bytes", b.c.maxLen[i]))
		}
		if !utf8.Valid(v.raw) {
			return rowError(line, name, "not valid UTF-8")
		}
		code, ok := b.dict[i][string(v.raw)]
		if !ok {
			if b.c.allowed[i] != nil && !b.c.allowed[i][string(v.raw)] {
				return rowError(line, name, fmt.Sprintf("%q is not one of the allowed values %v", v.raw, col.Allowed))
			}
			s := string(v.raw)
			code = int32(len(b.dvals[i]))
			b.dict[i][s] = code
			b.dvals[i] = append(b.dvals[i], s)
		}
		b.idx[i] = append(b.idx[i], code)
	case privalytics.TypeInt:
		n, err := parseInt(v)
		if err != nil {
			return rowError(line, name, err.Error())
		}
		b.i64[i] = append(b.i64[i], n)
	case privalytics.TypeDecimal:
		n, err := parseDecimalValue(v, col.Scale)
		if err != nil {
			return rowError(line, name, err.Error())
		}
		b.i64[i] = append(b.i64[i], n)
	case privalytics.TypeFloat:
		if v.kind != kindNumber && v.kind != kindString {
			return rowError(line, name, "must be a number")
		}
		f, err := strconv.ParseFloat(string(v.raw), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return rowError(line, name, "must be a finite number")
		}
		b.f64[i] = append(b.f64[i], f)
	case privalytics.TypeBool:
		switch {
		case v.kind == kindBool:
			b.bools[i] = append(b.bools[i], v.b)
		case v.kind == kindString && (string(v.raw) == "true" || string(v.raw) == "false"):
			b.bools[i] = append(b.bools[i], string(v.raw) == "true")
		default:
			return rowError(line, name, "must be true or false")
		}
	case privalytics.TypeTimestamp:
		us, err := parseTimeValue(v)
		if err != nil {
			return rowError(line, name, err.Error())
		}
		b.i64[i] = append(b.i64[i], us)
	}
	b.valid[i] = append(b.valid[i], true)
	b.seen |= 1 << uint(i)
	return nil
}

// endRow fills absent optional fields with nulls and checks required ones.
func (b *batch) endRow(line int) error {
	for i, col := range b.c.cols {
		if b.seen&(1<<uint(i)) != 0 {
			continue
		}
		if col.Required {
			name := col.Name
			if i == 0 {
				name = b.c.schema.Subject
			}
			return rowError(line, name, "required field is missing")
		}
		switch col.Type {
		case privalytics.TypeString:
			b.idx[i] = append(b.idx[i], 0)
		case privalytics.TypeFloat:
			b.f64[i] = append(b.f64[i], 0)
		case privalytics.TypeBool:
			b.bools[i] = append(b.bools[i], false)
		default:
			b.i64[i] = append(b.i64[i], 0)
		}
		b.valid[i] = append(b.valid[i], false)
	}
	b.seen = 0
	b.rows++
	if b.rows > b.c.limits.MaxRows {
		return privalytics.Errorf(privalytics.ETOOLARGE, "a batch holds at most %d events; split it", b.c.limits.MaxRows).With("line", line)
	}
	return nil
}

// record assembles the Arrow record.
func (b *batch) record() arrow.Record {
	mem := memory.DefaultAllocator
	arrs := make([]arrow.Array, len(b.c.cols))
	sb := array.NewUint64Builder(mem)
	sb.AppendValues(b.u64, nil)
	arrs[0] = sb.NewArray()
	for i, col := range b.c.cols[1:] {
		i++
		valid := b.valid[i]
		if col.Required {
			valid = nil
		}
		switch col.Type {
		case privalytics.TypeString:
			ib := array.NewInt32Builder(mem)
			ib.AppendValues(b.idx[i], valid)
			indices := ib.NewArray()
			db := array.NewStringBuilder(mem)
			db.AppendValues(b.dvals[i], nil)
			dict := db.NewArray()
			arrs[i] = array.NewDictionaryArray(b.c.arrow.Field(i).Type, indices, dict)
			indices.Release()
			dict.Release()
		case privalytics.TypeFloat:
			fb := array.NewFloat64Builder(mem)
			fb.AppendValues(b.f64[i], valid)
			arrs[i] = fb.NewArray()
		case privalytics.TypeBool:
			bb := array.NewBooleanBuilder(mem)
			bb.AppendValues(b.bools[i], valid)
			arrs[i] = bb.NewArray()
		case privalytics.TypeTimestamp:
			tb := array.NewTimestampBuilder(mem, b.c.arrow.Field(i).Type.(*arrow.TimestampType))
			vals := b.i64[i]
			tb.AppendValues(*(*[]arrow.Timestamp)(unsafePointer(&vals)), valid)
			arrs[i] = tb.NewArray()
		default:
			nb := array.NewInt64Builder(mem)
			nb.AppendValues(b.i64[i], valid)
			arrs[i] = nb.NewArray()
		}
	}
	return array.NewRecord(b.c.arrow, arrs, int64(b.rows))
}

func parseInt(v value) (int64, error) {
	if v.kind == kindScaled {
		return v.n, nil
	}
	if v.kind != kindNumber && v.kind != kindString {
		return 0, fmt.Errorf("must be a whole number")
	}
	n, err := strconv.ParseInt(string(v.raw), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("must be a whole number, got %q", truncate(v.raw))
	}
	return n, nil
}

func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

// parseDecimalValue parses an exact decimal (JSON number or string) into an int64
// scaled by 10^scale. Exponents are refused: "1e3" is ambiguous for money.
func parseDecimalValue(v value, scale int) (int64, error) {
	if v.kind == kindScaled {
		return v.n, nil
	}
	if v.kind != kindNumber && v.kind != kindString {
		return 0, fmt.Errorf("must be a decimal number")
	}
	mant, s, err := parseDecimal(v.raw)
	if err != nil {
		return 0, err
	}
	return rescale(mant, s, scale)
}

// parseDecimal parses [-]digits[.digits] exactly into mantissa and scale.
func parseDecimal(b []byte) (mant int64, scale int, err error) {
	bad := fmt.Errorf("must be a decimal number like 12.50, got %q", truncate(b))
	if len(b) == 0 {
		return 0, 0, bad
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	digits, point := 0, false
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			if mant > (math.MaxInt64-9)/10 {
				return 0, 0, fmt.Errorf("decimal %q is too large", truncate(b))
			}
			mant = mant*10 + int64(c-'0')
			digits++
			if point {
				scale++
			}
		case c == '.' && !point:
			point = true
		default:
			return 0, 0, bad
		}
	}
	if digits == 0 {
		return 0, 0, bad
	}
	if neg {
		mant = -mant
	}
	return mant, scale, nil
}

var pow10 = [...]int64{1, 10, 100, 1000, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

// rescale moves mant from scale s to scale to, exactly or with an error.
func rescale(mant int64, s, to int) (int64, error) {
	if s > to {
		d := pow10[s-to]
		if mant%d != 0 {
			return 0, fmt.Errorf("has more than %d digits after the point", to)
		}
		return mant / d, nil
	}
	if to-s >= len(pow10) {
		return 0, fmt.Errorf("decimal is too large")
	}
	m := pow10[to-s]
	if mant > math.MaxInt64/m || mant < math.MinInt64/m {
		return 0, fmt.Errorf("decimal is too large")
	}
	return mant * m, nil
}

// parseTimeValue accepts RFC 3339 text or Unix seconds (a number, maybe fractional).
func parseTimeValue(v value) (int64, error) {
	switch v.kind {
	case kindTime:
		return v.n, nil
	case kindNumber:
		f, err := strconv.ParseFloat(string(v.raw), 64)
		if err != nil || math.IsNaN(f) || math.Abs(f) > 1e11 {
			return 0, fmt.Errorf("must be RFC 3339 text or Unix seconds, got %s", truncate(v.raw))
		}
		return int64(math.Round(f * 1e6)), nil
	case kindString:
		if us, ok := fastRFC3339(v.raw); ok {
			return us, nil
		}
		t, err := time.Parse(time.RFC3339Nano, string(v.raw))
		if err != nil {
			return 0, fmt.Errorf("must be RFC 3339 like 2025-03-01T10:00:00Z, got %q", truncate(v.raw))
		}
		return t.UnixMicro(), nil
	}
	return 0, fmt.Errorf("must be RFC 3339 text or Unix seconds")
}

// fastRFC3339 parses the common "YYYY-MM-DDTHH:MM:SSZ" without allocating.
func fastRFC3339(b []byte) (int64, bool) {
	if len(b) != 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[19] != 'Z' {
		return 0, false
	}
	num := func(s []byte) (int, bool) {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	y, ok1 := num(b[0:4])
	mo, ok2 := num(b[5:7])
	d, ok3 := num(b[8:10])
	h, ok4 := num(b[11:13])
	mi, ok5 := num(b[14:16])
	s, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) || h > 23 || mi > 59 || s > 59 {
		return 0, false
	}
	days := daysFromCivil(y, mo, d)
	return ((days*24+int64(h))*60+int64(mi))*60_000_000 + int64(s)*1_000_000, true
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the number of days since 1970-01-01 (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era*146097 + doe - 719468)
}
