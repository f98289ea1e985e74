package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/privalytics/privalytics"
)

// Mapping maps a source file's columns to the tenant's fields. It is JSON, so a
// business can keep one per source system:
//
//	{"fields": {"customer_id": {"column": "CustomerID"},
//	            "ts":     {"column": "InvoiceDate", "format": "2006-01-02 15:04:05", "time_zone": "Europe/London"},
//	            "type":   {"column": "InvoiceNo", "prefix": {"C": "refund"}, "default": "purchase"},
//	            "amount": {"column": "Quantity", "times": "UnitPrice"}},
//	 "skip_missing_subject": true}
//
// Source columns not named are not imported (minimisation). Without a mapping the
// source's column names must be the schema's field names.
type Mapping struct {
	Fields map[string]FieldSource `json:"fields"`
	// SkipMissingSubject skips (and counts) rows without a customer identifier
	// instead of failing: such rows have no privacy unit and cannot be stored.
	SkipMissingSubject bool `json:"skip_missing_subject,omitempty"`
}

// FieldSource says where one field's value comes from.
type FieldSource struct {
	Column   string            `json:"column,omitempty"`    // source column
	Const    string            `json:"const,omitempty"`     // a constant instead of a column
	Format   string            `json:"format,omitempty"`    // Go time layout of a timestamp column, e.g. "2006-01-02 15:04:05"
	TimeZone string            `json:"time_zone,omitempty"` // IANA zone for zone-less timestamps
	Times    string            `json:"times,omitempty"`     // multiply by this source column, exactly (amount = Quantity × UnitPrice)
	Prefix   map[string]string `json:"prefix,omitempty"`    // if the value starts with a key, use that key's value
	Default  string            `json:"default,omitempty"`   // with prefix: the value when no prefix matches
}

// UCIOnlineRetailMapping maps the UCI "Online Retail" data set (Chen, Sain and Guo,
// 2012, CC BY 4.0) to the default retail schema. Description is free text and is
// not imported. Guest checkouts (no CustomerID) are skipped and counted.
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

// ImportReport accounts for an import.
type ImportReport struct {
	Rows           int            `json:"rows"`
	Skipped        int            `json:"skipped"`
	SkippedReasons map[string]int `json:"skipped_reasons,omitempty"`
}

// fieldPlan is one target field's resolved source.
type fieldPlan struct {
	target   int
	name     string
	src      int // source column index; -1 for a constant
	times    int // -1 when not multiplying
	src2     FieldSource
	loc      *time.Location
	prefixes []string
}

// plan resolves a mapping against the source header.
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
			problems = append(problems, fmt.Sprintf("%q is not a field of the schema", name))
			continue
		}
		p := fieldPlan{target: target, name: name, src: -1, times: -1, src2: fs}
		if fs.Const == "" {
			i, ok := pos[fs.Column]
			if !ok {
				problems = append(problems, fmt.Sprintf("field %q: source column %q is not in the file's header", name, fs.Column))
				continue
			}
			p.src = i
		}
		if fs.Times != "" {
			i, ok := pos[fs.Times]
			if !ok {
				problems = append(problems, fmt.Sprintf("field %q: source column %q is not in the file's header", name, fs.Times))
				continue
			}
			p.times = i
		}
		if fs.TimeZone != "" {
			loc, err := time.LoadLocation(fs.TimeZone)
			if err != nil {
				problems = append(problems, fmt.Sprintf("field %q: unknown time zone %q", name, fs.TimeZone))
				continue
			}
			p.loc = loc
		} else {
			p.loc = time.UTC
		}
		for k := range fs.Prefix {
			p.prefixes = append(p.prefixes, k)
		}
		sort.Slice(p.prefixes, func(a, b int) bool { return len(p.prefixes[a]) > len(p.prefixes[b]) })
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

// value computes the field's value from a source row (strings).
func (p *fieldPlan) value(c *Converter, row []string) (value, error) {
	s := p.src2.Const
	if p.src >= 0 {
		s = row[p.src]
	}
	if len(p.prefixes) > 0 {
		out := p.src2.Default
		for _, k := range p.prefixes {
			if strings.HasPrefix(s, k) {
				out = p.src2.Prefix[k]
				break
			}
		}
		s = out
	}
	if s == "" {
		return value{kind: kindNull}, nil
	}
	col := c.cols[p.target]
	switch {
	case p.times >= 0:
		m1, s1, err := parseDecimal(bytesOf(strings.TrimSpace(s)))
		if err != nil {
			return value{}, err
		}
		m2, s2, err := parseDecimal(bytesOf(strings.TrimSpace(row[p.times])))
		if err != nil {
			return value{}, fmt.Errorf("%s: %v", p.src2.Times, err)
		}
		if m1 != 0 && (m2 > math.MaxInt64/abs(m1) || m2 < -math.MaxInt64/abs(m1)) {
			return value{}, errors.New("product is too large")
		}
		scale := col.Scale
		n, err := rescale(m1*m2, s1+s2, scale)
		if err != nil {
			return value{}, err
		}
		if col.Type == privalytics.TypeInt || col.Type == privalytics.TypeDecimal {
			return value{kind: kindScaled, n: n}, nil
		}
		return value{kind: kindString, raw: []byte(strconv.FormatFloat(float64(n)/math.Pow10(scale), 'f', -1, 64))}, nil
	case col.Type == privalytics.TypeTimestamp && p.src2.Format != "":
		t, err := time.ParseInLocation(p.src2.Format, strings.TrimSpace(s), p.loc)
		if err != nil {
			return value{}, fmt.Errorf("must be a time like %q, got %q", p.src2.Format, s)
		}
		return value{kind: kindTime, n: t.UnixMicro()}, nil
	}
	return value{kind: kindString, raw: bytesOf(s)}, nil
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// rowsFrom feeds source rows (as strings) through the plan into batches.
type rowSink struct {
	c         *Converter
	plan      []fieldPlan
	m         *Mapping
	batchRows int
	emit      func(arrow.Record) error
	b         *batch
	rep       ImportReport
}

func (r *rowSink) add(row []string, line int) error {
	b := r.b
	for i := range r.plan {
		p := &r.plan[i]
		v, err := p.value(r.c, row)
		if err != nil {
			b.rollback()
			return rowError(line, p.name, err.Error())
		}
		if p.target == 0 && v.kind == kindNull && r.m != nil && r.m.SkipMissingSubject {
			r.rep.Skipped++
			if r.rep.SkippedReasons == nil {
				r.rep.SkippedReasons = map[string]int{}
			}
			r.rep.SkippedReasons["no customer identifier"]++
			return nil
		}
		if err := b.set(p.target, v, line, p.name); err != nil {
			b.rollback()
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

// rollback forgets a half-set row (only for error paths: the batch is discarded).
func (b *batch) rollback() { b.seen = 0 }

type countingReader struct {
	r        io.Reader
	n        int64
	progress func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.progress != nil {
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
			return nil, privalytics.Errorf(privalytics.EINVALID, "the file looks gzipped but is not: %v", err)
		}
		return zr, nil
	}
	return br, nil
}

// ImportCSV reads a CSV file (header row required; gzip detected) and emits
// records of up to batchRows rows, in file order. progress, if set, gets the bytes
// read so far. One goroutine parses while the others convert blocks of rows in
// parallel. A bad row stops the import with its line named: records before its
// block stay emitted, nothing after it is.
func ImportCSV(ctx context.Context, r io.Reader, c *Converter, m *Mapping, batchRows int, emit func(arrow.Record) error, progress func(int64)) (ImportReport, error) {
	in, err := maybeGunzip(&countingReader{r: r, progress: progress})
	if err != nil {
		return ImportReport{}, err
	}
	cr := csv.NewReader(in)
	cr.FieldsPerRecord = 0
	header, err := cr.Read()
	if err != nil {
		return ImportReport{}, privalytics.Errorf(privalytics.EINVALID, "CSV: cannot read the header row: %v", err)
	}
	plan, err := c.plan(m, header)
	if err != nil {
		return ImportReport{}, err
	}
	batchRows = max(1, min(batchRows, c.limits.MaxRows))

	type block struct {
		seq   int
		rows  [][]string
		lines []int
		err   error // a parse error after the rows
	}
	type result struct {
		seq  int
		recs []arrow.Record
		rep  ImportReport
		err  error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	blocks := make(chan block, 2)
	results := make(chan result, 2)
	go func() { // the parser
		defer close(blocks)
		for seq := 0; ; seq++ {
			b := block{seq: seq, rows: make([][]string, 0, batchRows), lines: make([]int, 0, batchRows)}
			for len(b.rows) < batchRows {
				row, err := cr.Read()
				if err == io.EOF {
					break
				} else if err != nil {
					var pe *csv.ParseError
					if errors.As(err, &pe) {
						b.err = rowError(pe.Line, "", "malformed CSV: "+pe.Err.Error())
					} else {
						b.err = privalytics.Errorf(privalytics.EINVALID, "CSV: %v", err)
					}
					break
				}
				line, _ := cr.FieldPos(0)
				b.rows, b.lines = append(b.rows, row), append(b.lines, line)
			}
			if len(b.rows) == 0 && b.err == nil {
				return
			}
			select {
			case blocks <- b:
			case <-ctx.Done():
				return
			}
			if b.err != nil || len(b.rows) < batchRows {
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() { // converters
			defer wg.Done()
			for b := range blocks {
				res := result{seq: b.seq}
				sink := &rowSink{c: c, plan: plan, m: m, batchRows: batchRows, emit: func(rec arrow.Record) error {
					res.recs = append(res.recs, rec)
					return nil
				}}
				sink.b = c.newBatch(len(b.rows))
				for i, row := range b.rows {
					if res.err = sink.add(row, b.lines[i]); res.err != nil {
						break
					}
				}
				if res.err == nil {
					res.err = sink.flush()
				}
				if res.err == nil {
					res.err = b.err
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
	for res := range results {
		pending[res.seq] = res
		for {
			r, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			rep.Rows += r.rep.Rows
			rep.Skipped += r.rep.Skipped
			for k, v := range r.rep.SkippedReasons {
				if rep.SkippedReasons == nil {
					rep.SkippedReasons = map[string]int{}
				}
				rep.SkippedReasons[k] += v
			}
			if r.err == nil {
				for _, rec := range r.recs {
					r.err = emit(rec)
					if r.err != nil {
						break
					}
				}
			}
			if r.err != nil {
				cancel()
				for range results {
				}
				return rep, r.err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	return rep, nil
}

// ImportNDJSON reads NDJSON (gzip detected) and emits records of up to batchRows
// rows. Field names must be the schema's: mappings apply to CSV and Parquet.
func ImportNDJSON(ctx context.Context, r io.Reader, c *Converter, m *Mapping, batchRows int, emit func(arrow.Record) error, progress func(int64)) (ImportReport, error) {
	if m != nil && len(m.Fields) > 0 {
		return ImportReport{}, privalytics.Errorf(privalytics.EINVALID, "mappings apply to CSV and Parquet files; NDJSON must use the schema's field names")
	}
	in, err := maybeGunzip(&countingReader{r: r, progress: progress})
	if err != nil {
		return ImportReport{}, err
	}
	br := bufio.NewReaderSize(in, 1<<20)
	batchRows = min(batchRows, c.limits.MaxRows)
	b := c.newBatch(batchRows)
	sc := &scanner{}
	var rep ImportReport
	for line := 1; ; line++ {
		ln, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return rep, rowError(line, "", "line is longer than 1 MiB")
		}
		if len(bytes.TrimSpace(ln)) > 0 {
			sc.buf, sc.pos = ln, 0
			if err := c.row(b, sc, line); err != nil {
				return rep, err
			}
			sc.skipSpace()
			if sc.pos != len(ln) {
				return rep, rowError(line, "", "unexpected text after the object; send one object per line")
			}
			rep.Rows++
			if b.rows >= batchRows {
				if err := emit(b.record()); err != nil {
					return rep, err
				}
				b = c.newBatch(batchRows)
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
	if b.rows > 0 {
		return rep, emit(b.record())
	}
	return rep, nil
}

// ImportParquetReader reads a whole Parquet file from r (it needs random access,
// so the file is held in memory; the caller limits its size) and maps its columns
// like a CSV header.
func ImportParquetReader(ctx context.Context, r io.Reader, c *Converter, m *Mapping, batchRows int, emit func(arrow.Record) error, progress func(int64)) (ImportReport, error) {
	raw, err := io.ReadAll(&countingReader{r: r, progress: progress})
	if err != nil {
		return ImportReport{}, err
	}
	pf, err := file.NewParquetReader(bytes.NewReader(raw))
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
	// Timestamps in Parquet are instants: map them as µs directly.
	sink := &rowSink{c: c, plan: plan, m: m, batchRows: min(batchRows, c.limits.MaxRows), emit: emit}
	sink.b = c.newBatch(sink.batchRows)
	row := make([]string, len(header))
	line := 0
	for rr.Next() {
		rec := rr.Record()
		for i := range int(rec.NumRows()) {
			line++
			for j := range header {
				row[j] = cellText(rec.Column(j), i)
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

// cellText renders one Arrow cell as text for the mapping ("" for null).
func cellText(a arrow.Array, i int) string {
	if a.IsNull(i) {
		return ""
	}
	switch a := a.(type) {
	case *array.String:
		return a.Value(i)
	case *array.LargeString:
		return a.Value(i)
	case *array.Binary:
		return string(a.Value(i))
	case *array.Dictionary:
		return cellText(a.Dictionary(), a.GetValueIndex(i))
	case *array.Int64:
		return strconv.FormatInt(a.Value(i), 10)
	case *array.Int32:
		return strconv.FormatInt(int64(a.Value(i)), 10)
	case *array.Float64:
		return strconv.FormatFloat(a.Value(i), 'f', -1, 64)
	case *array.Boolean:
		return strconv.FormatBool(a.Value(i))
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		return a.Value(i).ToTime(unit).UTC().Format(time.RFC3339Nano)
	}
	return a.ValueStr(i)
}
