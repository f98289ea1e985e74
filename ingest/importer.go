package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/privalytics/privalytics"
)

// ImportReport accounts for an import.
type ImportReport struct {
	Rows           int            `json:"rows"`                      // rows converted and emitted
	Skipped        int            `json:"skipped"`                   // rows left out on purpose (see Mapping.SkipMissingSubject)
	SkippedReasons map[string]int `json:"skipped_reasons,omitempty"` // why, with counts
}

// ReasonNoSubject is the SkippedReasons key of rows without a customer identifier.
const ReasonNoSubject = "no customer identifier"

func (r *ImportReport) add(o ImportReport) {
	r.Rows += o.Rows
	r.Skipped += o.Skipped
	for k, v := range o.SkippedReasons {
		if r.SkippedReasons == nil {
			r.SkippedReasons = map[string]int{}
		}
		r.SkippedReasons[k] += v
	}
}

// fieldPlan is one target field's resolved source.
type fieldPlan struct {
	target   int
	name     string
	src      int // source column index; -1 for a constant
	times    int // -1 when not multiplying
	fs       FieldSource
	loc      *time.Location
	prefixes []string // longest first
}

// plan resolves a mapping (nil: identity) against the source's column names.
func (c *Converter) plan(m *Mapping, header []string) ([]fieldPlan, error) {
	pos := map[string]int{}
	for i, h := range header {
		pos[strings.TrimSpace(h)] = i
	}
	fields := map[string]FieldSource{}
	if m == nil || len(m.Fields) == 0 {
		for _, h := range header {
			fields[strings.TrimSpace(h)] = FieldSource{Column: strings.TrimSpace(h)}
		}
	} else {
		if err := m.Validate(); err != nil {
			return nil, err
		}
		fields = m.Fields
	}
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []fieldPlan
	var problems []string
	for _, name := range names {
		fs := fields[name]
		target, ok := c.byName[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%q is not a field of the schema (fields: %s); map it to one or leave it out", name, strings.Join(c.names, ", ")))
			continue
		}
		p := fieldPlan{target: target, name: name, src: -1, times: -1, fs: fs, loc: time.UTC}
		if fs.Const == "" {
			i, ok := pos[fs.Column]
			if !ok {
				problems = append(problems, fmt.Sprintf("field %q: source column %q is not in the file", name, fs.Column))
				continue
			}
			p.src = i
		}
		if fs.Times != "" {
			i, ok := pos[fs.Times]
			if !ok {
				problems = append(problems, fmt.Sprintf("field %q: source column %q is not in the file", name, fs.Times))
				continue
			}
			p.times = i
			if t := c.cols[target].Type; t != privalytics.TypeInt && t != privalytics.TypeDecimal && t != privalytics.TypeFloat {
				problems = append(problems, fmt.Sprintf("field %q: times applies to int, decimal and float fields", name))
			}
		}
		if fs.Format != "" && c.cols[target].Type != privalytics.TypeTimestamp {
			problems = append(problems, fmt.Sprintf("field %q: format applies to timestamp fields", name))
		}
		if fs.TimeZone != "" {
			loc, err := time.LoadLocation(fs.TimeZone)
			if err != nil {
				problems = append(problems, fmt.Sprintf("field %q: unknown time zone %q", name, fs.TimeZone))
				continue
			}
			p.loc = loc
		}
		for k := range fs.Prefix {
			p.prefixes = append(p.prefixes, k)
		}
		sort.Slice(p.prefixes, func(a, b int) bool {
			pa, pb := p.prefixes[a], p.prefixes[b]
			return len(pa) > len(pb) || (len(pa) == len(pb) && pa < pb)
		})
		out = append(out, p)
	}
	if len(problems) > 0 {
		return nil, privalytics.Errorf(privalytics.EINVALID, "mapping: %s", strings.Join(problems, "; "))
	}
	// The subject goes first, so a row without one is skipped before anything is set.
	sort.SliceStable(out, func(a, b int) bool { return out[a].target == 0 && out[b].target != 0 })
	return out, nil
}

func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// timeMemo remembers the last text timestamp parsed per field: rows of one order
// share their time, and time.ParseInLocation is the costliest step of a row.
type timeMemo struct {
	text string
	us   int64
}

// value computes the field's value from a source row of text cells.
func (p *fieldPlan) value(c *Converter, row []string, memo *timeMemo) (value, error) {
	s := p.fs.Const
	if p.src >= 0 {
		s = row[p.src]
	}
	if len(p.prefixes) > 0 {
		out := p.fs.Default
		for _, k := range p.prefixes {
			if strings.HasPrefix(s, k) {
				out = p.fs.Prefix[k]
				break
			}
		}
		s = out
	}
	if s == "" {
		return value{kind: kindNull}, nil
	}
	col := &c.cols[p.target]
	switch {
	case p.times >= 0:
		m1, s1, err := parseDecimal(bytesOf(strings.TrimSpace(s)))
		if err != nil {
			return value{}, err
		}
		m2, s2, err := parseDecimal(bytesOf(strings.TrimSpace(row[p.times])))
		if err != nil {
			return value{}, fmt.Errorf("%s: %v", p.fs.Times, err)
		}
		prod, ok := mulExact(m1, m2)
		if !ok {
			return value{}, errors.New("the product is too large")
		}
		if col.Type == privalytics.TypeFloat {
			return value{kind: kindText, raw: []byte(strconv.FormatFloat(float64(prod)/math.Pow10(s1+s2), 'g', -1, 64))}, nil
		}
		n, err := rescale(prod, s1+s2, col.Scale)
		if err != nil {
			return value{}, fmt.Errorf("%s × %s = %s × %s %v", p.fs.Column, p.fs.Times, strings.TrimSpace(s), strings.TrimSpace(row[p.times]), err)
		}
		return value{kind: kindScaled, n: n}, nil
	case col.Type == privalytics.TypeTimestamp && p.fs.Format != "":
		if memo.text == s && s != "" {
			return value{kind: kindTime, n: memo.us}, nil
		}
		t, err := time.ParseInLocation(p.fs.Format, strings.TrimSpace(s), p.loc)
		if err != nil {
			return value{}, fmt.Errorf("must be a time like %q (the mapping's format), got %q", p.fs.Format, s)
		}
		memo.text, memo.us = strings.Clone(s), t.UnixMicro()
		return value{kind: kindTime, n: memo.us}, nil
	}
	return value{kind: kindText, raw: bytesOf(s)}, nil
}

// mulExact multiplies exactly, or reports that the product overflows int64.
func mulExact(a, b int64) (int64, bool) {
	ua, ub := uint64(a), uint64(b)
	if a < 0 {
		ua = -ua
	}
	if b < 0 {
		ub = -ub
	}
	hi, lo := bits.Mul64(ua, ub)
	if hi != 0 || lo > math.MaxInt64 {
		return 0, false
	}
	if (a < 0) != (b < 0) {
		return -int64(lo), true
	}
	return int64(lo), true
}

// rowSink feeds source rows (as text cells) through the plan into batches.
type rowSink struct {
	c         *Converter
	plan      []fieldPlan
	memo      []timeMemo
	skipEmpty bool
	batchRows int
	emit      func(arrow.Record) error
	b         *batch
	rep       ImportReport
}

func newRowSink(c *Converter, plan []fieldPlan, m *Mapping, batchRows int, emit func(arrow.Record) error) *rowSink {
	return &rowSink{c: c, plan: plan, memo: make([]timeMemo, len(plan)), skipEmpty: m != nil && m.SkipMissingSubject,
		batchRows: batchRows, emit: emit, b: c.newBatch(batchRows)}
}

func (r *rowSink) add(row []string, line int) error {
	b := r.b
	for i := range r.plan {
		p := &r.plan[i]
		v, err := p.value(r.c, row, &r.memo[i])
		if err != nil {
			return rowError(line, p.name, err.Error())
		}
		if p.target == 0 && v.kind == kindNull && r.skipEmpty {
			r.rep.Skipped++
			if r.rep.SkippedReasons == nil {
				r.rep.SkippedReasons = map[string]int{}
			}
			r.rep.SkippedReasons[ReasonNoSubject]++
			return nil
		}
		if err := b.set(p.target, &v, line); err != nil {
			return err
		}
	}
	if err := b.endRow(line); err != nil {
		return err
	}
	r.rep.Rows++
	if b.rows >= r.batchRows {
		return r.flush()
	}
	return nil
}

func (r *rowSink) flush() error {
	if r.b.rows == 0 {
		return nil
	}
	rec := r.b.record()
	r.b = r.c.newBatch(r.batchRows)
	return r.emit(rec)
}

type countingReader struct {
	r        io.Reader
	n        int64
	progress func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.progress != nil && n > 0 {
		c.progress(c.n)
	}
	return n, err
}

// maybeGunzip detects gzip by its magic bytes.
func maybeGunzip(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, rowError(1, "", fmt.Sprintf("the file looks gzipped but is not: %v", err))
		}
		return zr, nil
	}
	return br, nil
}

func batchSize(c *Converter, batchRows int) int {
	if batchRows <= 0 || batchRows > c.limits.MaxRows {
		return c.limits.MaxRows
	}
	return batchRows
}

// ImportCSV reads a CSV file (RFC 4180, UTF-8; header row required; gzip
// detected by its magic bytes), maps it (m nil: the header names are the schema's
// fields) and emits records of up to batchRows rows (≤ Limits.MaxRows; 0 means
// that), in file order. progress, if set, gets the bytes read so far. One
// goroutine splits the text into blocks while GOMAXPROCS others convert them.
// A bad row stops the import with an *privalytics.Error naming its line: the
// records of earlier blocks are emitted, nothing from its block on is; the report
// counts the rows emitted.
func ImportCSV(ctx context.Context, r io.Reader, c *Converter, m *Mapping, batchRows int, emit func(arrow.Record) error, progress func(int64)) (ImportReport, error) {
	in, err := maybeGunzip(&countingReader{r: r, progress: progress})
	if err != nil {
		return ImportReport{}, err
	}
	cr := &csvReader{r: bufio.NewReaderSize(in, maxCSVLine)}
	header, err := cr.header()
	if err != nil {
		if err == io.EOF {
			return ImportReport{}, rowError(1, "", "the file is empty; a CSV file needs a header row")
		}
		return ImportReport{}, csvFailure(err)
	}
	// Spreadsheet programs start UTF-8 CSV with a byte-order mark.
	header[0] = strings.TrimPrefix(header[0], "\ufeff")
	plan, err := c.plan(m, header)
	if err != nil {
		return ImportReport{}, atHeader(err)
	}
	batchRows = batchSize(c, batchRows)

	type result struct {
		seq  int
		recs []arrow.Record
		rep  ImportReport
		err  error
	}
	type job struct {
		seq int
		b   *csvBlock
		err error // a read error after the block's rows
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan job, 2)
	results := make(chan result, 2)
	// The splitter; it ends before the converters do, as they range over jobs.
	go func() {
		defer close(jobs)
		sizeHint := 64 * batchRows
		for seq := 0; ; seq++ {
			b, err := cr.block(batchRows, sizeHint)
			if err == io.EOF {
				return
			}
			sizeHint = max(sizeHint, cap(b.data))
			select {
			case jobs <- job{seq: seq, b: b, err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			row := make([]string, len(header))
			for j := range jobs {
				res := result{seq: j.seq}
				sink := newRowSink(c, plan, m, batchRows, func(rec arrow.Record) error {
					res.recs = append(res.recs, rec)
					return nil
				})
				for i := range j.b.rows() {
					j.b.row(i, row)
					if res.err = sink.add(row, j.b.lines[i]); res.err != nil {
						break
					}
				}
				if res.err == nil {
					res.err = sink.flush()
				}
				if res.err == nil && j.err != nil {
					res.err = csvFailure(j.err)
				}
				res.rep = sink.rep
				select {
				case results <- res:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()

	// Emit in file order.
	var rep ImportReport
	pending := map[int]result{}
	next := 0
	fail := func(err error) (ImportReport, error) {
		cancel()
		for range results { // wait for the converters (and so the splitter) to stop
		}
		return rep, err
	}
	for res := range results {
		pending[res.seq] = res
		for {
			r, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			if r.err != nil {
				return fail(r.err)
			}
			for _, rec := range r.recs {
				if err := emit(rec); err != nil {
					return fail(err)
				}
			}
			rep.add(r.rep)
		}
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	return rep, nil
}

// atHeader blames the header row (line 1) for a mapping that does not fit it.
func atHeader(err error) error {
	if e, ok := err.(*privalytics.Error); ok {
		return e.With("line", 1)
	}
	return err
}

func csvFailure(err error) error {
	var ce *csvError
	if errors.As(err, &ce) {
		return rowError(ce.line, "", "malformed CSV: "+ce.msg)
	}
	var pe *privalytics.Error
	if errors.As(err, &pe) {
		return pe
	}
	return privalytics.Errorf(privalytics.EINVALID, "reading the file: %v", err)
}

// ImportNDJSON reads NDJSON (gzip detected; one flat object per line; blank lines
// ignored) and emits records of up to batchRows rows. Without a mapping (m nil or
// without fields) lines are decoded as DecodeJSON does, with JSON types checked.
// With a mapping, keys are source columns like a CSV header's: keys that no field
// names are dropped, and values are read as text, as CSV cells are.
func ImportNDJSON(ctx context.Context, r io.Reader, c *Converter, m *Mapping, batchRows int, emit func(arrow.Record) error, progress func(int64)) (ImportReport, error) {
	in, err := maybeGunzip(&countingReader{r: r, progress: progress})
	if err != nil {
		return ImportReport{}, err
	}
	br := bufio.NewReaderSize(in, maxCSVLine)
	batchRows = batchSize(c, batchRows)
	var sink *rowSink
	var srcPos map[string]int
	var row []string
	if m != nil && len(m.Fields) > 0 {
		srcPos = map[string]int{}
		for _, f := range m.Fields {
			for _, col := range []string{f.Column, f.Times} {
				if _, ok := srcPos[col]; col != "" && !ok {
					srcPos[col] = len(srcPos)
				}
			}
		}
		header := make([]string, len(srcPos))
		for k, i := range srcPos {
			header[i] = k
		}
		plan, err := c.plan(m, header)
		if err != nil {
			return ImportReport{}, err
		}
		sink = newRowSink(c, plan, m, batchRows, emit)
		row = make([]string, len(header))
	}
	b := c.newBatch(batchRows)
	sc := &scanner{}
	var rep ImportReport
	for line := 1; ; line++ {
		ln, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return rep, rowError(line, "", "the line is longer than 1 MiB")
		}
		if len(bytes.TrimSpace(ln)) > 0 {
			sc.buf, sc.pos = ln, 0
			if sink != nil {
				if err := mappedLine(sc, srcPos, row, line); err != nil {
					return sink.rep, err
				}
			} else if err := c.row(b, sc, line); err != nil {
				return rep, err
			}
			sc.skipSpace()
			if sc.pos != len(ln) {
				return rep, rowError(line, "", "unexpected text after the object; send one object per line")
			}
			if sink != nil {
				if err := sink.add(row, line); err != nil {
					return sink.rep, err
				}
			} else {
				rep.Rows++
				if b.rows >= batchRows {
					if err := emit(b.record()); err != nil {
						return rep, err
					}
					b = c.newBatch(batchRows)
				}
			}
		}
		if err == io.EOF {
			break
		} else if err != nil {
			return rep, privalytics.Errorf(privalytics.EINVALID, "reading NDJSON: %v", err)
		}
		if line%4096 == 0 && ctx.Err() != nil {
			return rep, ctx.Err()
		}
	}
	if sink != nil {
		return sink.rep, sink.flush()
	}
	if b.rows > 0 {
		return rep, emit(b.record())
	}
	return rep, nil
}

var textTrue, textFalse = []byte("true"), []byte("false")

// mappedLine reads one NDJSON object into row by source key. The cells share the
// line's memory; the sink copies what it keeps.
func mappedLine(sc *scanner, pos map[string]int, row []string, line int) error {
	clear(row)
	var seen uint64
	err := sc.begin()
	for err == nil {
		ok, e := sc.next()
		if e != nil || !ok {
			err = e
			break
		}
		key, v := sc.key, &sc.val
		i, known := pos[string(key)]
		if !known {
			continue // not mapped: not imported
		}
		if i < 64 && seen&(1<<i) != 0 {
			return rowError(line, string(key), "the key appears twice in one object")
		}
		seen |= 1 << (i & 63)
		raw := v.raw
		switch v.kind {
		case kindBool:
			raw = textFalse
			if v.b {
				raw = textTrue
			}
		case kindNull:
			raw = nil
		}
		if len(raw) > 0 {
			row[i] = unsafe.String(&raw[0], len(raw))
		}
	}
	if se, ok := err.(*syntaxError); ok {
		return rowError(line, "", "malformed JSON: "+se.msg)
	}
	return err
}

// ImportParquet imports a Parquet file by path (random access, so nothing is held
// in memory beyond a row group), mapping its columns like a CSV header.
// progress gets the bytes read from the file so far.
func ImportParquet(ctx context.Context, path string, c *Converter, m *Mapping, batchRows int, emit func(arrow.Record) error, progress func(int64)) (ImportReport, error) {
	f, err := os.Open(path)
	if err != nil {
		return ImportReport{}, privalytics.Errorf(privalytics.EINVALID, "Parquet: %v", err)
	}
	defer f.Close()
	return importParquet(ctx, &countingReaderAt{f: f, progress: progress}, c, m, batchRows, emit)
}

// ImportParquetReader imports a Parquet file read whole from r: Parquet needs
// random access, so the file is held in memory (the caller limits its size).
func ImportParquetReader(ctx context.Context, r io.Reader, c *Converter, m *Mapping, batchRows int, emit func(arrow.Record) error, progress func(int64)) (ImportReport, error) {
	raw, err := io.ReadAll(&countingReader{r: r, progress: progress})
	if err != nil {
		return ImportReport{}, privalytics.Errorf(privalytics.EINVALID, "reading the Parquet file: %v", err)
	}
	return importParquet(ctx, bytes.NewReader(raw), c, m, batchRows, emit)
}

type countingReaderAt struct {
	f        *os.File
	n        atomic.Int64
	progress func(int64)
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.f.ReadAt(p, off)
	if total := c.n.Add(int64(n)); c.progress != nil && n > 0 {
		c.progress(total)
	}
	return n, err
}

func (c *countingReaderAt) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	if total := c.n.Add(int64(n)); c.progress != nil && n > 0 {
		c.progress(total)
	}
	return n, err
}

func (c *countingReaderAt) Seek(off int64, whence int) (int64, error) { return c.f.Seek(off, whence) }

func importParquet(ctx context.Context, r parquet.ReaderAtSeeker, c *Converter, m *Mapping, batchRows int, emit func(arrow.Record) error) (ImportReport, error) {
	pf, err := file.NewParquetReader(r)
	if err != nil {
		return ImportReport{}, privalytics.Errorf(privalytics.EINVALID, "not a Parquet file: %v", err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 65536}, memory.DefaultAllocator)
	if err != nil {
		return ImportReport{}, privalytics.Errorf(privalytics.EINVALID, "Parquet: %v", err)
	}
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		return ImportReport{}, privalytics.Errorf(privalytics.EINVALID, "Parquet: %v", err)
	}
	defer rr.Release()
	sch := rr.Schema()
	header := make([]string, sch.NumFields())
	for i, f := range sch.Fields() {
		header[i] = f.Name
	}
	plan, err := c.plan(m, header)
	if err != nil {
		return ImportReport{}, err
	}
	sink := newRowSink(c, plan, m, batchSize(c, batchRows), emit)
	row := make([]string, len(header))
	var arena []byte
	ends := make([]int, len(header))
	line := 0
	for rr.Next() {
		if err := ctx.Err(); err != nil {
			return sink.rep, err
		}
		rec := rr.Record()
		cols := rec.Columns()
		for i := range int(rec.NumRows()) {
			line++
			// Cells that are not strings already are rendered into one reused
			// arena; the sink copies what it keeps.
			arena = arena[:0]
			for j, col := range cols {
				if s, ok := stringCell(col, i); ok {
					row[j], ends[j] = s, -1
					continue
				}
				arena = appendCell(arena, col, i)
				ends[j] = len(arena)
			}
			from := 0
			for j := range cols {
				if ends[j] < 0 {
					continue
				}
				row[j] = ""
				if ends[j] > from {
					row[j] = unsafe.String(&arena[from], ends[j]-from)
				}
				from = ends[j]
			}
			if err := sink.add(row, line); err != nil {
				return sink.rep, err
			}
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return sink.rep, privalytics.Errorf(privalytics.EINVALID, "Parquet: %v", err)
	}
	return sink.rep, sink.flush()
}

// stringCell returns a string cell without copying ("" for null).
func stringCell(a arrow.Array, i int) (string, bool) {
	if a.IsNull(i) {
		return "", true
	}
	switch a := a.(type) {
	case *array.String:
		return a.Value(i), true
	case *array.LargeString:
		return a.Value(i), true
	case *array.Dictionary:
		return stringCell(a.Dictionary(), a.GetValueIndex(i))
	}
	return "", false
}

// appendCell renders a non-string cell as text for the mapping; timestamps
// become exact Unix seconds.
func appendCell(dst []byte, a arrow.Array, i int) []byte {
	switch a := a.(type) {
	case *array.Binary:
		return append(dst, a.Value(i)...)
	case *array.Int64:
		return strconv.AppendInt(dst, a.Value(i), 10)
	case *array.Int32:
		return strconv.AppendInt(dst, int64(a.Value(i)), 10)
	case *array.Int16:
		return strconv.AppendInt(dst, int64(a.Value(i)), 10)
	case *array.Int8:
		return strconv.AppendInt(dst, int64(a.Value(i)), 10)
	case *array.Uint32:
		return strconv.AppendUint(dst, uint64(a.Value(i)), 10)
	case *array.Uint64:
		return strconv.AppendUint(dst, a.Value(i), 10)
	case *array.Float64:
		return strconv.AppendFloat(dst, a.Value(i), 'f', -1, 64)
	case *array.Float32:
		return strconv.AppendFloat(dst, float64(a.Value(i)), 'f', -1, 32)
	case *array.Boolean:
		return strconv.AppendBool(dst, a.Value(i))
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		return appendUnixSeconds(dst, a.Value(i).ToTime(unit).UnixMicro())
	}
	return append(dst, a.ValueStr(i)...)
}

// appendUnixSeconds writes µs as exact decimal seconds, e.g. -1.500000.
func appendUnixSeconds(dst []byte, us int64) []byte {
	u := uint64(us)
	if us < 0 {
		dst = append(dst, '-')
		u = -u
	}
	dst = strconv.AppendUint(dst, u/1_000_000, 10)
	frac := u % 1_000_000
	dst = append(dst, '.')
	for d := uint64(100_000); d > 0; d /= 10 {
		dst = append(dst, byte('0'+frac/d%10))
	}
	return dst
}
