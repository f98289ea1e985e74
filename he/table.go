package he

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/he/heint"

	"github.com/privalytics/privalytics"
)

// ColumnKind says how a column's values are to be read.
type ColumnKind string

const (
	// KindValue is a numeric column within declared bounds.
	KindValue ColumnKind = "value"
	// KindIndicator is 1 where a categorical column has one declared value and 0
	// elsewhere; group-by works by multiplying or summing indicators.
	KindIndicator ColumnKind = "indicator"
)

// ColumnSpec declares one encrypted column. The bounds are part of the contract:
// the encryptor refuses values outside them and the processor sizes its
// overflow checks from them.
type ColumnSpec struct {
	Name     string     `json:"name"`
	Kind     ColumnKind `json:"kind"`
	Min      float64    `json:"min"`
	Max      float64    `json:"max"`
	Group    string     `json:"group,omitempty"`    // indicator: the categorical column it comes from
	Category string     `json:"category,omitempty"` // indicator: the declared value it marks
}

// absBound is the largest magnitude a value of the column can have.
func (c ColumnSpec) absBound() float64 { return math.Max(math.Abs(c.Min), math.Abs(c.Max)) }

// TableHeader describes an encrypted table; it is public to the processor.
type TableHeader struct {
	Version int          `json:"version"`
	Preset  Preset       `json:"preset"`
	Columns []ColumnSpec `json:"columns"`
	Rows    int64        `json:"rows"`
	// RowsPerCiphertext is the number of slots per ciphertext: row r is in slot
	// r mod RowsPerCiphertext of block r / RowsPerCiphertext; unused slots of the
	// last block hold 0.
	RowsPerCiphertext int `json:"rows_per_ciphertext"`
	// Packing names the layout above.
	Packing string `json:"packing"`
	// Level is the level ciphertexts are encrypted at; below the top level they
	// are smaller but leave less room for products and for large sums.
	Level int `json:"level"`
	// RowsPerSubject is the most rows one customer has in the table, enforced
	// when it was encrypted (rows beyond it were dropped); 0 for tables
	// encrypted without a subject column. The DP release sizes its noise from it.
	RowsPerSubject int `json:"rows_per_subject,omitempty"`
}

const (
	tableMagic     = "PVHT"
	tableVersion   = 1
	packingSlots   = "slots-row-major"
	maxHeaderBytes = 1 << 20
	maxTableRows   = 1 << 36
	maxColumns     = 1024
	// MaxRowsPerSubject bounds the per-customer row cap: beyond it the DP
	// noise would drown any statistic anyway.
	MaxRowsPerSubject = 1 << 16
)

// Blocks is the number of ciphertexts per column.
func (h *TableHeader) Blocks() int64 {
	if h.RowsPerCiphertext <= 0 {
		return 0
	}
	return (h.Rows + int64(h.RowsPerCiphertext) - 1) / int64(h.RowsPerCiphertext)
}

// Column returns the index of the named column.
func (h *TableHeader) Column(name string) (int, error) {
	for i, c := range h.Columns {
		if c.Name == name {
			return i, nil
		}
	}
	return -1, privalytics.Errorf(privalytics.ENOTFOUND, "he: the table has no column %q", name)
}

// Indicators returns the indicator columns of a group, in header order.
func (h *TableHeader) Indicators(group string) []int {
	var out []int
	for i, c := range h.Columns {
		if c.Kind == KindIndicator && c.Group == group {
			out = append(out, i)
		}
	}
	return out
}

// validate checks the header against its preset; c is the compiled preset.
func (h *TableHeader) validate(c *params) error {
	var problems []string
	if h.Version != tableVersion {
		problems = append(problems, fmt.Sprintf("version %d is not supported (want %d)", h.Version, tableVersion))
	}
	if h.Rows < 1 || h.Rows > maxTableRows {
		problems = append(problems, fmt.Sprintf("rows must be 1..%d, got %d", int64(maxTableRows), h.Rows))
	}
	if len(h.Columns) == 0 || len(h.Columns) > maxColumns {
		problems = append(problems, fmt.Sprintf("a table needs 1..%d columns, got %d", maxColumns, len(h.Columns)))
	}
	if h.RowsPerCiphertext != c.slots() || h.Packing != packingSlots {
		problems = append(problems, fmt.Sprintf("packing must be %q with %d rows per ciphertext for preset %q", packingSlots, c.slots(), c.Name))
	}
	if h.Level < 0 || h.Level > c.rlwe.MaxLevel() {
		problems = append(problems, fmt.Sprintf("level must be 0..%d, got %d", c.rlwe.MaxLevel(), h.Level))
	}
	if h.RowsPerSubject < 0 || h.RowsPerSubject > MaxRowsPerSubject {
		problems = append(problems, fmt.Sprintf("rows_per_subject must be 0..%d, got %d", MaxRowsPerSubject, h.RowsPerSubject))
	}
	seen := map[string]bool{}
	for i, col := range h.Columns {
		if col.Name == "" || len(col.Name) > 256 || seen[col.Name] {
			problems = append(problems, fmt.Sprintf("columns[%d]: names must be unique, 1..256 bytes", i))
		}
		seen[col.Name] = true
		finite := !math.IsNaN(col.Min) && !math.IsNaN(col.Max) && !math.IsInf(col.Min, 0) && !math.IsInf(col.Max, 0)
		if !finite || col.Min > col.Max {
			problems = append(problems, fmt.Sprintf("columns[%d] %s: bounds must be finite with min ≤ max, got [%g, %g]", i, col.Name, col.Min, col.Max))
		}
		if c.Scheme == BGV && (col.Min != math.Trunc(col.Min) || col.Max != math.Trunc(col.Max)) {
			problems = append(problems, fmt.Sprintf("columns[%d] %s: bgv columns hold integers; scale decimals to integers (e.g. cents) and declare integer bounds", i, col.Name))
		}
		switch col.Kind {
		case KindValue:
		case KindIndicator:
			if col.Group == "" || col.Min != 0 || col.Max != 1 {
				problems = append(problems, fmt.Sprintf("columns[%d] %s: an indicator needs a group and bounds [0, 1]", i, col.Name))
			}
		default:
			problems = append(problems, fmt.Sprintf("columns[%d] %s: kind must be %q or %q", i, col.Name, KindValue, KindIndicator))
		}
		if finite && c.Scheme == BGV && col.absBound() >= float64(c.PlaintextModulus/2) {
			problems = append(problems, fmt.Sprintf("columns[%d] %s: bounds exceed t/2=%d", i, col.Name, c.PlaintextModulus/2))
		}
		if finite && c.Scheme == CKKS && math.Log2(col.absBound()+1)+float64(c.LogScale)+1 >= c.logQAt(h.Level) {
			problems = append(problems, fmt.Sprintf("columns[%d] %s: bound %g does not fit the modulus at level %d", i, col.Name, col.absBound(), h.Level))
		}
	}
	if len(problems) > 0 {
		return privalytics.Errorf(privalytics.EINVALID, "he: table header: %s", joinProblems(problems))
	}
	return nil
}

// TableSpec is what the owner declares before encrypting.
type TableSpec struct {
	Preset  Preset
	Columns []ColumnSpec
	// LevelsDropped encrypts below the top level: smaller ciphertexts, less
	// headroom (0 keeps the top level, the safe default).
	LevelsDropped int
	// RowsPerSubject is the per-customer row cap the caller enforced before
	// writing (0: none); it is recorded in the header for the release.
	RowsPerSubject int
	// Progress, if set, is called after each block with the blocks done and the total.
	Progress func(done, total int64)
}

// IndicatorColumns turns a categorical column into one indicator column per
// declared category. Values outside the declared categories get 0 everywhere,
// so the declared list (public) fully determines the output's shape.
func IndicatorColumns(group string, categories []string, values []string) ([]ColumnSpec, [][]float64) {
	specs := make([]ColumnSpec, len(categories))
	cols := make([][]float64, len(categories))
	index := make(map[string]int, len(categories))
	for i, cat := range categories {
		specs[i] = ColumnSpec{Name: group + "=" + cat, Kind: KindIndicator, Min: 0, Max: 1, Group: group, Category: cat}
		cols[i] = make([]float64, len(values))
		index[cat] = i
	}
	for r, v := range values {
		if i, ok := index[v]; ok {
			cols[i][r] = 1
		}
	}
	return specs, cols
}

// EncryptTable encrypts columns (one slice of values per spec column, all of
// the same length) under the owner's public key and streams the table to w.
func EncryptTable(ctx context.Context, w io.Writer, pk *rlwe.PublicKey, spec TableSpec, columns [][]float64) error {
	if len(columns) == 0 {
		return privalytics.Errorf(privalytics.EINVALID, "he: no columns to encrypt")
	}
	tw, err := NewTableWriter(w, pk, spec, int64(len(columns[0])))
	if err != nil {
		return err
	}
	if err := tw.WriteRows(ctx, columns); err != nil {
		return err
	}
	return tw.Close()
}

// TableWriter encrypts rows as they come and streams full blocks to w. The
// row count goes into the header first, so it must be known up front.
type TableWriter struct {
	w       io.Writer
	c       *params
	spec    TableSpec
	header  TableHeader
	enc     *blockEncryptor
	pending [][]float64 // rows not yet encrypted, per column
	written int64       // rows encrypted so far
	blocks  int64       // blocks written so far
	buf     []byte
}

// NewTableWriter validates the spec and writes the table header.
func NewTableWriter(w io.Writer, pk *rlwe.PublicKey, spec TableSpec, rows int64) (*TableWriter, error) {
	c, err := spec.Preset.compile()
	if err != nil {
		return nil, err
	}
	h := TableHeader{Version: tableVersion, Preset: spec.Preset, Columns: spec.Columns, Rows: rows,
		RowsPerCiphertext: c.slots(), Packing: packingSlots, Level: c.rlwe.MaxLevel() - spec.LevelsDropped, RowsPerSubject: spec.RowsPerSubject}
	if err := h.validate(c); err != nil {
		return nil, err
	}
	hb, _ := json.Marshal(h)
	if _, err := io.WriteString(w, tableMagic); err != nil {
		return nil, err
	}
	if err := writeFrame(w, hb); err != nil {
		return nil, err
	}
	return &TableWriter{w: w, c: c, spec: spec, header: h, enc: newBlockEncryptor(c, pk, h.Level),
		pending: make([][]float64, len(spec.Columns)), buf: make([]byte, 0, ciphertextBytes(c, h.Level))}, nil
}

// WriteRows adds rows, given column by column (the same number of values in
// each), encrypting every block that fills up.
func (t *TableWriter) WriteRows(ctx context.Context, columns [][]float64) error {
	if len(columns) != len(t.spec.Columns) {
		return privalytics.Errorf(privalytics.EINVALID, "he: %d column specs but %d value columns", len(t.spec.Columns), len(columns))
	}
	n := len(columns[0])
	for i, col := range columns {
		s := t.spec.Columns[i]
		if len(col) != n {
			return privalytics.Errorf(privalytics.EINVALID, "he: column %q has %d values, column %q has %d; all columns need one value per row", s.Name, len(col), t.spec.Columns[0].Name, n)
		}
		for r, v := range col {
			if !(v >= s.Min && v <= s.Max) || (t.c.Scheme == BGV && v != math.Trunc(v)) {
				kind := ""
				if t.c.Scheme == BGV {
					kind = " or not an integer"
				}
				return privalytics.Errorf(privalytics.EINVALID, "he: column %q row %d: value %g is outside the declared bounds [%g, %g]%s; clamp it or widen the bounds", s.Name, t.written+int64(len(t.pending[0])+r), v, s.Min, s.Max, kind)
			}
		}
	}
	if t.written+int64(len(t.pending[0])+n) > t.header.Rows {
		return privalytics.Errorf(privalytics.EINVALID, "he: more rows than the %d declared in the header", t.header.Rows)
	}
	slots := t.c.slots()
	for off := 0; off < n; {
		take := min(slots-len(t.pending[0]), n-off)
		for i, col := range columns {
			t.pending[i] = append(t.pending[i], col[off:off+take]...)
		}
		off += take
		if len(t.pending[0]) == slots {
			if err := t.flush(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *TableWriter) flush(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, col := range t.pending {
		ct, err := t.enc.encrypt(col)
		if err != nil {
			return err
		}
		t.buf = appendCiphertext(t.buf[:0], ct)
		if _, err := t.w.Write(t.buf); err != nil {
			return err
		}
	}
	t.written += int64(len(t.pending[0]))
	t.blocks++
	for i := range t.pending {
		t.pending[i] = t.pending[i][:0]
	}
	if t.spec.Progress != nil {
		t.spec.Progress(t.blocks, t.header.Blocks())
	}
	return nil
}

// Close encrypts the last, partial block and checks that every declared row
// was written.
func (t *TableWriter) Close() error {
	got := t.written + int64(len(t.pending[0]))
	if got != t.header.Rows {
		return privalytics.Errorf(privalytics.EINVALID, "he: %d rows written but the header declares %d", got, t.header.Rows)
	}
	if len(t.pending[0]) > 0 {
		return t.flush(context.Background())
	}
	return nil
}

// blockEncryptor owns one encoder and encryptor; it is not safe for concurrent use.
type blockEncryptor struct {
	c     *params
	level int
	bgv   *heint.Encoder
	ckks  *hefloat.Encoder
	enc   *rlwe.Encryptor
	ints  []int64
	reals []float64
}

func newBlockEncryptor(c *params, pk *rlwe.PublicKey, level int) *blockEncryptor {
	e := &blockEncryptor{c: c, level: level, enc: rlwe.NewEncryptor(c.rlwe, pk)}
	if c.Scheme == BGV {
		e.bgv, e.ints = heint.NewEncoder(c.bgv), make([]int64, c.slots())
	} else {
		e.ckks, e.reals = hefloat.NewEncoder(c.ckks), make([]float64, c.slots())
	}
	return e
}

func (e *blockEncryptor) encrypt(values []float64) (*rlwe.Ciphertext, error) {
	var pt *rlwe.Plaintext
	var err error
	if e.c.Scheme == BGV {
		clear(e.ints)
		for i, v := range values {
			e.ints[i] = int64(v)
		}
		pt = heint.NewPlaintext(e.c.bgv, e.level)
		err = e.bgv.Encode(e.ints, pt)
	} else {
		clear(e.reals)
		copy(e.reals, values)
		pt = hefloat.NewPlaintext(e.c.ckks, e.level)
		err = e.ckks.Encode(e.reals, pt)
	}
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "he: encode: %v", err)
	}
	ct, err := e.enc.EncryptNew(pt)
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "he: encrypt: %v", err)
	}
	return ct, nil
}

// Table ciphertexts are stored as raw coefficients only: their shape (degree 1,
// the header's level) and metadata (scale, NTT form) follow from the header, so
// the decoder allocates exactly what the header implies and checks every
// coefficient against its modulus instead of trusting embedded lengths.

// ciphertextBytes is the stored size of one table ciphertext.
func ciphertextBytes(c *params, level int) int { return 2 * (level + 1) * c.rlwe.N() * 8 }

func appendCiphertext(buf []byte, ct *rlwe.Ciphertext) []byte {
	for _, p := range ct.Value {
		for _, row := range p.Coeffs[:ct.Level()+1] {
			for _, x := range row {
				buf = binary.LittleEndian.AppendUint64(buf, x)
			}
		}
	}
	return buf
}

func (c *params) newCiphertext(degree, level int) *rlwe.Ciphertext {
	if c.Scheme == BGV {
		return heint.NewCiphertext(c.bgv, degree, level)
	}
	return hefloat.NewCiphertext(c.ckks, degree, level)
}

func decodeCiphertext(c *params, level int, b []byte) (*rlwe.Ciphertext, error) {
	ct := c.newCiphertext(1, level)
	moduli := c.rlwe.Q()
	off := 0
	for _, p := range ct.Value {
		for j, row := range p.Coeffs[:level+1] {
			for k := range row {
				x := binary.LittleEndian.Uint64(b[off:])
				if x >= moduli[j] {
					return nil, privalytics.Errorf(privalytics.EINVALID, "he: ciphertext coefficient %d is not below its modulus; the table is corrupt", off/8)
				}
				row[k] = x
				off += 8
			}
		}
	}
	return ct, nil
}

// TableReader streams an encrypted table block by block.
type TableReader struct {
	r      io.Reader
	c      *params
	header TableHeader
	block  int64
	buf    []byte
}

// NewTableReader reads and checks the header. It refuses unknown presets,
// presets that differ from the registered one, and headers over 1 MiB.
func NewTableReader(r io.Reader) (*TableReader, error) {
	magic := make([]byte, len(tableMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != tableMagic {
		return nil, privalytics.Errorf(privalytics.EINVALID, "he: not an encrypted table (bad magic); expected a file written by EncryptTable")
	}
	hb, err := readFrame(r, maxHeaderBytes, "table header")
	if err != nil {
		return nil, err
	}
	var h TableHeader
	dec := json.NewDecoder(bytes.NewReader(hb))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return nil, privalytics.Errorf(privalytics.EINVALID, "he: table header is not valid: %v", err)
	}
	if h.Preset, err = resolvePreset(h.Preset); err != nil {
		return nil, err
	}
	c, err := h.Preset.compile()
	if err != nil {
		return nil, err
	}
	if err := h.validate(c); err != nil {
		return nil, err
	}
	return &TableReader{r: r, c: c, header: h}, nil
}

// Header returns the table's header.
func (t *TableReader) Header() TableHeader { return t.header }

// Next returns the next block: one ciphertext per column, in header order. It
// returns io.EOF after the last block.
func (t *TableReader) Next() ([]*rlwe.Ciphertext, error) {
	if t.block >= t.header.Blocks() {
		return nil, io.EOF
	}
	size := ciphertextBytes(t.c, t.header.Level)
	if t.buf == nil {
		t.buf = make([]byte, size)
	}
	out := make([]*rlwe.Ciphertext, len(t.header.Columns))
	for i := range out {
		if _, err := io.ReadFull(t.r, t.buf); err != nil {
			return nil, truncated(fmt.Sprintf("block %d column %q", t.block, t.header.Columns[i].Name), err)
		}
		ct, err := decodeCiphertext(t.c, t.header.Level, t.buf)
		if err != nil {
			return nil, err
		}
		out[i] = ct
	}
	t.block++
	return out, nil
}

// Table is an encrypted table held in memory. Jobs only read it, so any number
// of jobs may run on one Table at once.
type Table struct {
	Header TableHeader
	// Blocks[b][c] is block b of column c.
	Blocks [][]*rlwe.Ciphertext
}

// ReadTable reads a whole table.
func ReadTable(r io.Reader) (*Table, error) {
	tr, err := NewTableReader(r)
	if err != nil {
		return nil, err
	}
	t := &Table{Header: tr.Header()}
	for {
		blk, err := tr.Next()
		if err == io.EOF {
			if n, _ := io.ReadFull(r, make([]byte, 1)); n > 0 {
				return nil, privalytics.Errorf(privalytics.EINVALID, "he: bytes follow the last of the table's %d blocks; the file is corrupt or two tables were joined", t.Header.Blocks())
			}
			return t, nil
		} else if err != nil {
			return nil, err
		}
		t.Blocks = append(t.Blocks, blk)
	}
}
