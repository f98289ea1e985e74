// Package ingest turns incoming events into a tenant's Arrow record batches:
// decode (NDJSON, a JSON array, CSV, Parquet) → validate against the tenant's
// schema → minimise (undeclared fields are rejected) → pseudonymise the customer
// identifier (HMAC-SHA256 under the tenant's key) → Arrow, laid out exactly as
// privalytics.Schema.Arrow(). A batch is converted whole or not at all: the first
// bad row stops it with an *privalytics.Error naming the line, the field and the
// reason.
package ingest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"math"
	"math/bits"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/privalytics/privalytics"
)

// Limits bound one batch. The server sets them from its configuration.
type Limits struct {
	// MaxRows is the most events one batch (one request body) may hold; more is
	// ETOOLARGE. Default 100,000.
	MaxRows int
	// MaxStringBytes is the longest string, in bytes, of a string column declared
	// without max_length. Default 256.
	MaxStringBytes int
}

// DefaultLimits returns 100,000 rows per batch and 256-byte strings.
func DefaultLimits() Limits { return Limits{MaxRows: 100_000, MaxStringBytes: 256} }

// Pseudonymiser maps a raw customer identifier to the stored subject: the first 8
// bytes (big-endian) of HMAC-SHA256(key, identifier). Without the key, which never
// leaves the server, the subject cannot be linked back to the identifier; with it,
// the business can find one customer's data for access and erasure requests.
type Pseudonymiser struct {
	pool sync.Pool // of *macState: HMAC states are not safe to share, and costly to key
}

type macState struct {
	mac hash.Hash
	sum [sha256.Size]byte
}

// NewPseudonymiser returns a pseudonymiser for a 32-byte tenant key.
func NewPseudonymiser(key []byte) (*Pseudonymiser, error) {
	if len(key) != 32 {
		return nil, privalytics.Errorf(privalytics.EINVALID, "pseudonymisation key must be 32 bytes, got %d", len(key))
	}
	k := append([]byte(nil), key...)
	return &Pseudonymiser{pool: sync.Pool{New: func() any { return &macState{mac: hmac.New(sha256.New, k)} }}}, nil
}

// Subject returns the pseudonym of id. It is safe for concurrent use.
func (p *Pseudonymiser) Subject(id []byte) uint64 {
	st := p.pool.Get().(*macState)
	st.mac.Reset()
	st.mac.Write(id)
	out := binary.BigEndian.Uint64(st.mac.Sum(st.sum[:0]))
	p.pool.Put(st)
	return out
}

// Converter converts rows of one tenant. It is safe for concurrent use: every
// call works on its own batch state.
type Converter struct {
	schema  privalytics.Schema
	cols    []privalytics.Column // stored order; cols[0] is the subject
	names   []string             // input field name per stored column
	arrow   *arrow.Schema
	byName  map[string]int // input field name → stored index
	allowed []map[string]bool
	maxLen  []int
	pseudo  *Pseudonymiser
	limits  Limits
	// freeText marks the columns scanned for stray personal data; redact says
	// whether findings are redacted (else the batch is rejected).
	freeText []bool
	redact   bool
	all      uint64 // one bit per stored column
	seed     uint64 // of the batches' hash tables (see strTable)
	// checks holds one-row batches for CheckEvent, reset between uses.
	checks sync.Pool
}

// SetStrayData sets the tenant's policy for personal data found in free-text
// fields: privalytics.StrayReject (the default) or StrayRedact. Call it before
// the converter is shared.
func (c *Converter) SetStrayData(policy string) error {
	switch policy {
	case "", privalytics.StrayReject:
		c.redact = false
	case privalytics.StrayRedact:
		c.redact = true
	default:
		return privalytics.Errorf(privalytics.EINVALID, "stray data policy must be %q or %q, got %q", privalytics.StrayReject, privalytics.StrayRedact, policy)
	}
	return nil
}

// NewConverter prepares conversion into schema.Arrow(). Zero limits take the
// defaults.
func NewConverter(schema privalytics.Schema, p *Pseudonymiser, lim Limits) (*Converter, error) {
	if err := schema.Validate(); err != nil {
		return nil, err
	}
	if p == nil {
		return nil, privalytics.Errorf(privalytics.EINVALID, "ingest: a pseudonymiser is required")
	}
	if lim.MaxRows <= 0 {
		lim.MaxRows = DefaultLimits().MaxRows
	}
	if lim.MaxStringBytes <= 0 {
		lim.MaxStringBytes = DefaultLimits().MaxStringBytes
	}
	c := &Converter{schema: schema, cols: schema.Stored(), arrow: schema.Arrow(), byName: map[string]int{}, pseudo: p, limits: lim}
	c.all = 1<<uint(len(c.cols)) - 1
	c.seed = newSeed()
	if len(c.cols) == 64 {
		c.all = ^uint64(0)
	}
	c.allowed = make([]map[string]bool, len(c.cols))
	c.maxLen = make([]int, len(c.cols))
	c.freeText = make([]bool, len(c.cols))
	c.names = make([]string, len(c.cols))
	for i, col := range c.cols {
		name := col.Name
		if i == 0 {
			name = schema.Subject
		}
		c.names[i] = name
		c.byName[name] = i
		if len(col.Allowed) > 0 {
			c.allowed[i] = map[string]bool{}
			for _, a := range col.Allowed {
				c.allowed[i][a] = true
			}
		}
		c.freeText[i] = col.FreeText && col.Type == privalytics.TypeString && i > 0
		c.maxLen[i] = col.MaxLength
		if c.maxLen[i] == 0 {
			c.maxLen[i] = lim.MaxStringBytes
		}
	}
	return c, nil
}

// Schema returns the tenant schema the converter validates against.
func (c *Converter) Schema() privalytics.Schema { return c.schema }

// Limits returns the limits in force (defaults filled in).
func (c *Converter) Limits() Limits { return c.limits }

// rowError builds the error for a bad row: EINVALID with Details "line" (1-based),
// "field" (the input field name, when one is to blame) and "reason".
func rowError(line int, field, reason string) *privalytics.Error {
	msg := fmt.Sprintf("line %d", line)
	if field != "" {
		msg += fmt.Sprintf(", field %q", field)
	}
	e := privalytics.Errorf(privalytics.EINVALID, "%s: %s", msg, reason)
	e.Details = map[string]any{"line": line, "reason": reason}
	if field != "" {
		e.Details["field"] = field
	}
	return e
}

// batch accumulates one record's columns. Column buffers are indexed by stored
// column; only the ones of the column's type are allocated.
type batch struct {
	c     *Converter
	rows  int
	u64   []uint64
	i64   [][]int64
	f64   [][]float64
	bools [][]bool
	dict  []*strTable[int32] // per string column: value → dictionary code
	dvals [][]string         // per string column: the dictionary, in code order
	idx   [][]int32
	last  []int32 // per string column: the previous row's code, or -1
	valid [][]bool
	seen  uint64 // columns set in the current row (a schema has at most 64)
	null  uint64 // columns given as null in the current row
	order []int  // order[k]: the column of the k-th field of the previous row
	// pseudonyms memoises the keyed hash per customer: busy customers appear
	// many times in a file, and HMAC is the costliest step. It lives as long
	// as the batch and the batches nextBatch makes after it (one import's
	// worker), at most 65,536 entries.
	pseudonyms *strTable[uint64]
	lastID     []byte     // the previous row's customer identifier (a copy), nil before the first
	lastSubj   uint64     // and its pseudonym
	finds      []Finding  // scratch of the stray personal data scan
	hours      []hourMemo // per timestamp column
}

func (c *Converter) newBatch(capacity int) *batch { return c.nextBatch(nil, capacity) }

// nextBatch returns an empty batch for the rows after prev's (nil: the first).
// Its column buffers are new, as prev's went into prev's record; prev's maps
// and scratch are taken over, so that a long import does not grow a
// dictionary's map afresh for every batch: the dictionaries cleared, the
// pseudonym memo kept (a customer's identifier maps to the same pseudonym in
// every batch). prev must not be used after.
func (c *Converter) nextBatch(prev *batch, capacity int) *batch {
	n := len(c.cols)
	b := &batch{c: c, i64: make([][]int64, n), f64: make([][]float64, n), bools: make([][]bool, n),
		dict: make([]*strTable[int32], n), dvals: make([][]string, n), idx: make([][]int32, n), valid: make([][]bool, n)}
	b.u64 = make([]uint64, 0, capacity)
	b.order = make([]int, n)
	b.hours = make([]hourMemo, n)
	b.last = make([]int32, n)
	for i := range b.last {
		b.last[i] = -1
	}
	if prev != nil {
		b.pseudonyms, b.finds = prev.pseudonyms, prev.finds[:0]
		copy(b.order, prev.order)
	} else {
		b.pseudonyms = newStrTable[uint64](c.seed, min(capacity, 1<<12))
	}
	for i, col := range c.cols {
		if i == 0 {
			continue
		}
		if !col.Required {
			// The record packs validity into a bitmap of its own, so the
			// previous batch's slice is free to reuse (as are bool columns').
			if prev != nil && cap(prev.valid[i]) >= capacity {
				b.valid[i] = prev.valid[i][:0]
			} else {
				b.valid[i] = make([]bool, 0, capacity)
			}
		}
		switch col.Type {
		case privalytics.TypeString:
			if prev != nil {
				b.dict[i], b.dvals[i] = prev.dict[i], prev.dvals[i][:0] // record copied the values
				b.dict[i].reset()
			} else {
				b.dict[i] = newStrTable[int32](c.seed, 0)
			}
			b.idx[i] = make([]int32, 0, capacity)
		case privalytics.TypeFloat:
			b.f64[i] = make([]float64, 0, capacity)
		case privalytics.TypeBool:
			if prev != nil && cap(prev.bools[i]) >= capacity {
				b.bools[i] = prev.bools[i][:0]
			} else {
				b.bools[i] = make([]bool, 0, capacity)
			}
		default:
			b.i64[i] = make([]int64, 0, capacity)
		}
	}
	return b
}

// reset empties the batch for reuse, keeping its memory.
func (b *batch) reset() {
	b.rows, b.seen, b.null = 0, 0, 0
	b.u64 = b.u64[:0]
	for i := range b.c.cols {
		if b.i64[i] != nil {
			b.i64[i] = b.i64[i][:0]
		}
		if b.f64[i] != nil {
			b.f64[i] = b.f64[i][:0]
		}
		if b.bools[i] != nil {
			b.bools[i] = b.bools[i][:0]
		}
		if b.idx[i] != nil {
			b.idx[i] = b.idx[i][:0]
		}
		if b.valid[i] != nil {
			b.valid[i] = b.valid[i][:0]
		}
		if b.dict[i] != nil {
			b.dict[i].reset()
			b.dvals[i] = b.dvals[i][:0]
		}
		b.last[i] = -1
	}
	b.pseudonyms.reset()
	b.lastID = nil
}

// set stores one field value of the current row. On error the batch is to be
// discarded: the row is half set.
func (b *batch) set(i int, v *value, line int) error {
	if (b.seen|b.null)&(1<<uint(i)) != 0 {
		return rowError(line, b.c.names[i], "the field appears twice in one object")
	}
	if v.kind == kindNull {
		b.null |= 1 << uint(i) // absent; endRow fills the null or rejects a required field
		return nil
	}
	if i == 0 {
		return b.setSubject(v, line)
	}
	if err := b.put(i, v, line); err != nil {
		return err
	}
	if b.valid[i] != nil {
		b.valid[i] = append(b.valid[i], true)
	}
	b.seen |= 1 << uint(i)
	return nil
}

// put appends v, not null, to column i (not the subject), or says what is
// wrong with it. It leaves the validity and the row's bookkeeping to the
// caller.
func (b *batch) put(i int, v *value, line int) error {
	col := &b.c.cols[i]
	switch col.Type {
	case privalytics.TypeString:
		if v.kind != kindString && v.kind != kindText {
			return b.typeError(i, v, line, "must be a string")
		}
		if len(v.raw) > b.c.maxLen[i] {
			return rowError(line, b.c.names[i], fmt.Sprintf("is %d bytes long, longer than the %d allowed; shorten it or raise max_length in the schema", len(v.raw), b.c.maxLen[i]))
		}
		// Neighbouring rows often repeat a value (an order's lines, a busy
		// store): comparing with the previous row's value skips the hashing.
		code, ok := b.last[i], false
		var h uint64
		if code >= 0 && b.dvals[i][code] == string(v.raw) {
			ok = true
		} else {
			h = b.dict[i].hash(v.raw)
			code, ok = b.dict[i].get(v.raw, h)
		}
		if !ok {
			if b.c.allowed[i] != nil && !b.c.allowed[i][string(v.raw)] {
				return rowError(line, b.c.names[i], fmt.Sprintf("%q is not one of the allowed values %q", truncate(v.raw), col.Allowed))
			}
			if v.kind == kindText && !utf8.Valid(v.raw) { // JSON strings were checked by the scanner
				return rowError(line, b.c.names[i], "is not valid UTF-8; convert the file to UTF-8")
			}
			s := string(v.raw) // a copy: raw points into the caller's buffer
			stored := s
			if b.c.freeText[i] {
				// Scanned once per distinct value of the batch: the dictionary
				// remembers what a value became.
				if b.finds = ScanStray(v.raw, b.finds[:0]); len(b.finds) > 0 {
					if !b.c.redact {
						f := b.finds[0]
						return rowError(line, b.c.names[i], fmt.Sprintf("holds what looks like %s (bytes %d to %d); free-text fields must not carry personal data: remove it, or have the tenant redact it (privacy.stray_data \"redact\")", strayNames[f.Kind], f.Start, f.End)).With("kind", f.Kind)
					}
					stored = string(Redact(v.raw, b.finds))
				}
			}
			d := b.dict[i]
			hs := h
			if stored != s {
				hs = d.hash([]byte(stored))
				code, ok = d.get([]byte(stored), hs)
			}
			if !ok {
				code = int32(len(b.dvals[i]))
				d.put(stored, hs, code)
				b.dvals[i] = append(b.dvals[i], stored)
			}
			if stored != s {
				d.put(s, h, code)
			}
		}
		b.idx[i] = append(b.idx[i], code)
		b.last[i] = code
	case privalytics.TypeInt:
		n, err := parseIntValue(*v)
		if err != nil {
			return b.valueError(i, v, line, err)
		}
		b.i64[i] = append(b.i64[i], n)
	case privalytics.TypeDecimal:
		n, err := parseDecimalValue(*v, col.Scale)
		if err != nil {
			return b.valueError(i, v, line, err)
		}
		b.i64[i] = append(b.i64[i], n)
	case privalytics.TypeFloat:
		if v.kind != kindNumber && v.kind != kindText {
			return b.typeError(i, v, line, "must be a number")
		}
		f, err := strconv.ParseFloat(string(v.raw), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return rowError(line, b.c.names[i], fmt.Sprintf("must be a finite number, got %q", truncate(v.raw)))
		}
		b.f64[i] = append(b.f64[i], f)
	case privalytics.TypeBool:
		switch {
		case v.kind == kindBool:
			b.bools[i] = append(b.bools[i], v.b)
		case v.kind == kindText:
			// File cells carry the words of the program that wrote them: TRUE in
			// spreadsheets, yes/no in shop exports.
			t, ok := boolWord(string(v.raw))
			if !ok {
				return rowError(line, b.c.names[i], fmt.Sprintf("must be true or false (also TRUE/FALSE, yes/no, y/n, 1/0, on/off), got %q", truncate(v.raw)))
			}
			b.bools[i] = append(b.bools[i], t)
		default:
			return b.typeError(i, v, line, "must be true or false")
		}
	case privalytics.TypeTimestamp:
		us, err := parseTimeValue(*v, &b.hours[i])
		if err != nil {
			return b.valueError(i, v, line, err)
		}
		b.i64[i] = append(b.i64[i], us)
	}
	return nil
}

func (b *batch) setSubject(v *value, line int) error {
	name := b.c.names[0]
	if v.kind != kindString && v.kind != kindText {
		return b.typeError(0, v, line, "the customer identifier must be a string")
	}
	if len(v.raw) == 0 {
		return rowError(line, name, "the customer identifier is empty; every event needs the customer it belongs to")
	}
	if len(v.raw) > b.c.maxLen[0] {
		return rowError(line, name, fmt.Sprintf("the customer identifier is %d bytes long, longer than the %d allowed", len(v.raw), b.c.maxLen[0]))
	}
	// A customer's events are often neighbours (a session, an order's lines).
	if b.lastID != nil && string(b.lastID) == string(v.raw) {
		b.u64 = append(b.u64, b.lastSubj)
		b.seen |= 1
		return nil
	}
	h := b.pseudonyms.hash(v.raw)
	subj, ok := b.pseudonyms.get(v.raw, h)
	if !ok {
		if v.kind == kindText && !utf8.Valid(v.raw) {
			return rowError(line, name, "is not valid UTF-8; convert the file to UTF-8")
		}
		subj = b.c.pseudo.Subject(v.raw)
		if b.pseudonyms.len() < 1<<16 {
			b.pseudonyms.put(string(v.raw), h, subj)
		}
	}
	b.lastID, b.lastSubj = append(b.lastID[:0], v.raw...), subj
	b.u64 = append(b.u64, subj)
	b.seen |= 1
	return nil
}

var kindNames = [...]string{kindNull: "null", kindString: "a string", kindNumber: "a number", kindBool: "true or false", kindText: "text", kindTime: "a time", kindScaled: "a number"}

func (b *batch) typeError(i int, v *value, line int, want string) error {
	if v.kind == kindText || v.kind == kindString || v.kind == kindNumber {
		// Quote the value: "got text" alone does not say which cell to fix.
		return rowError(line, b.c.names[i], fmt.Sprintf("%s, got %s %q", want, kindNames[v.kind], truncate(v.raw)))
	}
	return rowError(line, b.c.names[i], fmt.Sprintf("%s, got %s", want, kindNames[v.kind]))
}

func (b *batch) valueError(i int, v *value, line int, err error) error {
	return rowError(line, b.c.names[i], err.Error())
}

// endRow fills absent optional fields with nulls and checks required ones.
func (b *batch) endRow(line int) error {
	// Only the columns the row did not set are visited (a full row visits
	// none): this runs once per row of every import.
	for missing := b.c.all &^ b.seen; missing != 0; missing &= missing - 1 {
		i := bits.TrailingZeros64(missing)
		col := &b.c.cols[i]
		if col.Required {
			return rowError(line, b.c.names[i], "required field is missing")
		}
		b.putNull(i)
	}
	b.seen, b.null = 0, 0
	b.rows++
	if b.rows > b.c.limits.MaxRows {
		reason := fmt.Sprintf("too many events: a batch holds at most %d; split it into smaller batches", b.c.limits.MaxRows)
		e := privalytics.Errorf(privalytics.ETOOLARGE, "line %d: %s", line, reason)
		e.Details = map[string]any{"line": line, "reason": reason, "max_rows": b.c.limits.MaxRows}
		return e
	}
	return nil
}

// putNull appends a null to the optional column i.
func (b *batch) putNull(i int) {
	switch b.c.cols[i].Type {
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

// record assembles the Arrow record from the column buffers without copying
// them again (builders would copy every value once more).
func (b *batch) record() arrow.Record {
	n := b.rows
	arrs := make([]arrow.Array, len(b.c.cols))
	arrs[0] = fixedArray(arrow.PrimitiveTypes.Uint64, n, nil, arrow.Uint64Traits.CastToBytes(b.u64))
	for i, col := range b.c.cols[1:] {
		i++
		dt := b.c.arrow.Field(i).Type
		valid := b.valid[i]
		switch col.Type {
		case privalytics.TypeString:
			indices := fixedArray(arrow.PrimitiveTypes.Int32, n, valid, arrow.Int32Traits.CastToBytes(b.idx[i]))
			dict := stringArray(b.dvals[i])
			arrs[i] = array.NewDictionaryArray(dt, indices, dict)
			indices.Release()
			dict.Release()
		case privalytics.TypeFloat:
			arrs[i] = fixedArray(dt, n, valid, arrow.Float64Traits.CastToBytes(b.f64[i]))
		case privalytics.TypeBool:
			bits, _ := bitmap(b.bools[i])
			arrs[i] = fixedArray(dt, n, valid, bits)
		default: // int, decimal, timestamp: int64 underneath
			arrs[i] = fixedArray(dt, n, valid, arrow.Int64Traits.CastToBytes(b.i64[i]))
		}
	}
	rec := array.NewRecord(b.c.arrow, arrs, int64(n))
	for _, a := range arrs {
		a.Release()
	}
	return rec
}

// bitmap packs bools into an Arrow bitmap and counts the false ones.
func bitmap(bs []bool) ([]byte, int) {
	out := make([]byte, (len(bs)+7)/8)
	unset := 0
	for i, v := range bs {
		if v {
			out[i>>3] |= 1 << (i & 7)
		} else {
			unset++
		}
	}
	return out, unset
}

func fixedArray(dt arrow.DataType, n int, valid []bool, values []byte) arrow.Array {
	var validity *memory.Buffer
	nulls := 0
	if valid != nil {
		bits, unset := bitmap(valid)
		if unset > 0 {
			validity, nulls = memory.NewBufferBytes(bits), unset
		}
	}
	data := array.NewData(dt, n, []*memory.Buffer{validity, memory.NewBufferBytes(values)}, nil, nulls, 0)
	defer data.Release()
	return array.MakeFromData(data)
}

func stringArray(vals []string) arrow.Array {
	offsets := make([]int32, len(vals)+1)
	size := 0
	for _, v := range vals {
		size += len(v)
	}
	chars := make([]byte, 0, size)
	for i, v := range vals {
		chars = append(chars, v...)
		offsets[i+1] = int32(len(chars))
	}
	data := array.NewData(arrow.BinaryTypes.String, len(vals),
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(offsets)), memory.NewBufferBytes(chars)}, nil, 0, 0)
	defer data.Release()
	return array.MakeFromData(data)
}
