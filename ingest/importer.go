package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
// counts the rows emitted. The records are a function of the file's bytes (not
// of how a reader hands them over, nor of the cores): POST /v1/imports keys the
// k-th record of a file so that a re-run stores only what is missing.
func ImportCSV(ctx context.Context, r io.Reader, c *Converter, m *Mapping, batchRows int, emit func(arrow.Record) error, progress func(int64)) (ImportReport, error) {
	return importCSV(ctx, r, c, m, batchRows, emit, progress, importOptions{})
}

// importOptions are the knobs of an import that only this package turns.
type importOptions struct {
	// workers converting blocks; 0 means GOMAXPROCS.
	workers int
	// observe is given to every row sink (see rowSink.observe); it must then be
	// safe for concurrent use, or workers 1.
	observe func(row []string, kept bool)
	// header, when set, is called once with the source's column names.
	header func([]string)
	// chunkBytes is the size of the blocks NDJSON is cut into; 0 means 4 MiB.
	chunkBytes int
}

func importCSV(ctx context.Context, r io.Reader, c *Converter, m *Mapping, batchRows int, emit func(arrow.Record) error, progress func(int64), opt importOptions) (ImportReport, error) {
	in, err := maybeGunzip(&countingReader{r: r, progress: progress})
	if err != nil {
		return ImportReport{}, err
	}
	br := bufio.NewReaderSize(in, maxCSVLine)
	cr := &csvReader{r: br}
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
	if opt.header != nil {
		opt.header(header)
	}
	batchRows = batchSize(c, batchRows)

	type job struct {
		seq  int
		b    *csvBlock // split already (fill-down), or
		data []byte    // a chunk to split, after line lines
		line int
		rows int     // lines in data: a hint for the block's size
		fill *filler // the fill-down state at the block's first row
		err  error   // a read error after the block's rows
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan job, 2)
	results := make(chan convertedBlock, 2)
	workers := opt.workers
	if workers <= 0 {
		workers = max(1, runtime.GOMAXPROCS(0))
	}
	free := make(chan []byte, workers+4) // chunks converted, for the splitter to reuse
	send := func(j job) bool {
		select {
		case jobs <- j:
			return true
		case <-ctx.Done():
			return false
		}
	}
	// The splitter; it ends before the converters do, as they range over jobs.
	go func() {
		defer close(jobs)
		if plan.fill == nil {
			// Chunks cut at record boundaries, split by the converters: the
			// one goroutine reading the file only counts quotes and newlines.
			// A chunk aims at about 95% of a batch so that it makes one
			// record, learning the bytes per line as it goes.
			ch := &chunker{r: br, line: cr.line}
			if opt.observe == nil { // an observer may keep a row's cells
				ch.free = free
			}
			target := opt.chunkBytes
			if target <= 0 {
				target = 1 << 20
			}
			for seq := 0; ; seq++ {
				data, line, err := ch.next(target)
				if err == io.EOF {
					return
				}
				if !send(job{seq: seq, data: data, line: line, rows: ch.line - line + 1, err: err}) || err != nil {
					return
				}
				if lines := ch.line - line; opt.chunkBytes <= 0 && lines > 0 {
					target = min(max(len(data)/lines*batchRows*95/100, 64<<10), 256<<20)
				}
			}
		}
		sizeHint := 64 * batchRows
		// Fill-down runs on across blocks: the splitter walks each block's rows
		// once, in order, to hand the next block the state it starts from.
		fill := plan.fill.clone()
		cells := make([]string, len(header))
		for seq := 0; ; seq++ {
			b, err := cr.block(batchRows, sizeHint)
			if err == io.EOF {
				return
			}
			sizeHint = max(sizeHint, cap(b.data))
			start := fill.clone()
			for i := range b.rows() {
				b.row(i, cells)
				fill.apply(cells)
			}
			if !send(job{seq: seq, b: b, fill: start, err: err}) || err != nil {
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			row := make([]string, len(header))
			var split *csvBlock // reused: its bounds are megabytes
			// One sink for all of this worker's blocks: its batches hand on
			// their dictionaries' maps and the pseudonym memo (see nextBatch).
			var recs []arrow.Record
			newSink := func() *rowSink {
				return newRowSink(c, plan, batchRows, func(rec arrow.Record) error {
					recs = append(recs, rec)
					return nil
				})
			}
			sink := newSink()
			for j := range jobs {
				res := convertedBlock{seq: j.seq}
				if j.data != nil {
					split, j.err = parseChunk(split, j.data, j.line, len(header), j.rows)
					j.b = split
				} else if j.b == nil {
					j.b = &csvBlock{nf: len(header)}
				}
				recs = nil
				sink.fill, sink.observe, sink.rep = j.fill, opt.observe, ImportReport{}
				res.err = sink.addBlock(j.b, row)
				if res.err == nil {
					res.err = sink.flush()
				}
				if res.err == nil && j.err != nil {
					res.err = csvFailure(j.err)
				}
				res.rep, res.recs = sink.rep, recs
				if res.err != nil {
					sink = newSink() // its batch may hold half a row
				}
				if j.data != nil && opt.observe == nil {
					// Nothing converted points into the chunk: dictionary
					// values, pseudonym keys and messages are copies.
					select {
					case free <- j.data[:0]:
					default:
					}
				}
				select {
				case results <- res:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()

	return emitInOrder(ctx, cancel, results, emit)
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
// names are dropped, and values are read as text, as CSV cells are. Blocks of
// lines convert on GOMAXPROCS goroutines (one, with fill-down) and are emitted
// in file order; a bad line stops the import with an *privalytics.Error naming
// it, the records of earlier blocks emitted and nothing from its block on. As
// with ImportCSV, the records are a function of the file's bytes.
func ImportNDJSON(ctx context.Context, r io.Reader, c *Converter, m *Mapping, batchRows int, emit func(arrow.Record) error, progress func(int64)) (ImportReport, error) {
	return importNDJSON(ctx, r, c, m, batchRows, emit, progress, importOptions{})
}

func importNDJSON(ctx context.Context, r io.Reader, c *Converter, m *Mapping, batchRows int, emit func(arrow.Record) error, progress func(int64), opt importOptions) (ImportReport, error) {
	in, err := maybeGunzip(&countingReader{r: r, progress: progress})
	if err != nil {
		return ImportReport{}, err
	}
	nc := &ndjsonConv{c: c, batchRows: batchSize(c, batchRows), observe: opt.observe}
	if m != nil && len(m.Fields) > 0 {
		// Keys are read by their name in the file: a renamed column by its old one.
		orig := map[string]string{}
		for from, to := range m.Rename {
			orig[to] = from
		}
		nc.srcPos = map[string]int{}
		for _, col := range m.columns() {
			if o, ok := orig[col]; ok {
				col = o
			}
			if _, ok := nc.srcPos[col]; !ok {
				nc.srcPos[col] = len(nc.header)
				nc.header = append(nc.header, col)
			}
		}
		if nc.plan, err = c.plan(m, nc.header); err != nil {
			return ImportReport{}, err
		}
		if opt.header != nil {
			opt.header(nc.header)
		}
	} else if m != nil && (m.FillDown != nil || len(m.Skip) > 0 || len(m.Rename) > 0 || m.SnakeCase) {
		return ImportReport{}, privalytics.Errorf(privalytics.EINVALID, "mapping: rename, snake_case, fill_down and skip need fields for NDJSON; name each field's column")
	}
	// Lines are independent, so blocks of them convert on all cores, unless
	// fill-down carries state from line to line. One core still goes block by
	// block: a block's end ends a batch, and batches must not depend on the
	// number of cores (a re-run import finds its stored batches by their place
	// in the file, see POST /v1/imports).
	workers := opt.workers
	if workers <= 0 {
		workers = max(1, runtime.GOMAXPROCS(0))
	}
	if nc.plan != nil && nc.plan.fill != nil {
		return nc.serial(ctx, bufio.NewReaderSize(in, maxCSVLine), emit)
	}
	return nc.parallel(ctx, in, workers, opt.chunkBytes, emit)
}

// ndjsonConv converts NDJSON lines: through a mapping (plan set: keys are
// source columns, values text) or straight (keys are fields, JSON types checked).
type ndjsonConv struct {
	c         *Converter
	plan      *sourcePlan
	srcPos    map[string]int
	header    []string
	batchRows int
	observe   func([]string, bool)
}

// ndjsonState is the conversion state of one run of lines.
type ndjsonState struct {
	nc   *ndjsonConv
	sink *rowSink
	row  []string
	b    *batch
	sc   scanner
	rep  ImportReport
	emit func(arrow.Record) error
}

func (nc *ndjsonConv) state(emit func(arrow.Record) error) *ndjsonState {
	st := &ndjsonState{nc: nc, emit: emit}
	if nc.plan != nil {
		st.sink = newRowSink(nc.c, nc.plan, nc.batchRows, emit)
		st.sink.observe = nc.observe
		st.row = make([]string, len(nc.header))
	} else {
		st.b = nc.c.newBatch(nc.batchRows)
	}
	return st
}

// line converts one line (blank lines are skipped).
func (st *ndjsonState) line(ln []byte, line int) error {
	if len(bytes.TrimSpace(ln)) == 0 {
		return nil
	}
	if len(ln) > maxCSVLine {
		return rowError(line, "", "the line is longer than 1 MiB")
	}
	sc := &st.sc
	sc.buf, sc.pos = ln, 0
	if st.sink != nil {
		if err := mappedLine(sc, st.nc.srcPos, st.row, line); err != nil {
			return err
		}
	} else if err := st.nc.c.row(st.b, sc, line); err != nil {
		return err
	}
	sc.skipSpace()
	if sc.pos != len(ln) {
		return rowError(line, "", "unexpected text after the object; send one object per line")
	}
	if st.sink != nil {
		return st.sink.add(st.row, line)
	}
	st.rep.Rows++
	if st.b.rows >= st.nc.batchRows {
		if err := st.emit(st.b.record()); err != nil {
			return err
		}
		st.b = st.nc.c.nextBatch(st.b, st.nc.batchRows)
	}
	return nil
}

func (st *ndjsonState) finish() error {
	if st.sink != nil {
		return st.sink.flush()
	}
	if st.b.rows > 0 {
		return st.emit(st.b.record())
	}
	return nil
}

func (st *ndjsonState) report() ImportReport {
	if st.sink != nil {
		return st.sink.rep
	}
	return st.rep
}

// serial converts the lines in order on the calling goroutine.
func (nc *ndjsonConv) serial(ctx context.Context, br *bufio.Reader, emit func(arrow.Record) error) (ImportReport, error) {
	st := nc.state(emit)
	for line := 1; ; line++ {
		ln, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return st.report(), rowError(line, "", "the line is longer than 1 MiB")
		}
		if lerr := st.line(ln, line); lerr != nil {
			return st.report(), lerr
		}
		if err == io.EOF {
			break
		} else if err != nil {
			return st.report(), privalytics.Errorf(privalytics.EINVALID, "reading NDJSON: %v", err)
		}
		if line%4096 == 0 && ctx.Err() != nil {
			return st.report(), ctx.Err()
		}
	}
	return st.report(), st.finish()
}

// ndjsonChunk is a run of whole lines, the first numbered line.
type ndjsonChunk struct {
	seq  int
	data []byte
	line int
	err  error // a read error after the chunk's lines
}

// parallel cuts the input into chunks of whole lines (an NDJSON line never
// holds a raw newline, so cutting after the last one in a read is safe), which
// workers convert while the input is still being read; records are emitted in
// file order, and a bad line stops the import as in serial.
func (nc *ndjsonConv) parallel(ctx context.Context, in io.Reader, workers, chunkBytes int, emit func(arrow.Record) error) (ImportReport, error) {
	if chunkBytes <= 0 {
		chunkBytes = 4 << 20
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan ndjsonChunk, 2)
	results := make(chan convertedBlock, 2)
	go func() {
		defer close(chunks)
		var carry []byte
		line := 1
		for seq := 0; ; seq++ {
			buf := make([]byte, len(carry), max(chunkBytes, 2*len(carry)))
			copy(buf, carry)
			n, err := io.ReadFull(in, buf[len(carry):cap(buf)])
			buf = buf[:len(carry)+n]
			eof := err == io.EOF || err == io.ErrUnexpectedEOF
			if eof {
				err = nil
			}
			cut := len(buf)
			if !eof && err == nil {
				cut = bytes.LastIndexByte(buf, '\n') + 1
				if cut == 0 && len(buf) > maxCSVLine {
					err = rowError(line, "", "the line is longer than 1 MiB")
				}
			}
			carry = buf[cut:]
			ch := ndjsonChunk{seq: seq, data: buf[:cut], line: line, err: err}
			if err != nil && privalytics.ErrorCode(err) == "" {
				ch.err = privalytics.Errorf(privalytics.EINVALID, "reading NDJSON: %v", err)
			}
			line += bytes.Count(ch.data, []byte{'\n'})
			select {
			case chunks <- ch:
			case <-ctx.Done():
				return
			}
			if eof || err != nil {
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ch := range chunks {
				res := convertedBlock{seq: ch.seq}
				st := nc.state(func(rec arrow.Record) error {
					res.recs = append(res.recs, rec)
					return nil
				})
				data, line := ch.data, ch.line
				for len(data) > 0 && res.err == nil {
					ln := data
					if i := bytes.IndexByte(data, '\n'); i >= 0 {
						ln, data = data[:i+1], data[i+1:]
					} else {
						data = nil
					}
					res.err = st.line(ln, line)
					line++
				}
				if res.err == nil {
					res.err = st.finish()
				}
				if res.err == nil {
					res.err = ch.err
				}
				res.rep = st.report()
				select {
				case results <- res:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()
	return emitInOrder(ctx, cancel, results, emit)
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
	return importParquet(ctx, &countingReaderAt{f: f, progress: progress}, c, m, batchRows, emit, importOptions{})
}

// ImportParquetReader imports a Parquet file read whole from r: Parquet needs
// random access, so the file is held in memory (the caller limits its size).
func ImportParquetReader(ctx context.Context, r io.Reader, c *Converter, m *Mapping, batchRows int, emit func(arrow.Record) error, progress func(int64)) (ImportReport, error) {
	raw, err := io.ReadAll(&countingReader{r: r, progress: progress})
	if err != nil {
		return ImportReport{}, privalytics.Errorf(privalytics.EINVALID, "reading the Parquet file: %v", err)
	}
	return importParquet(ctx, bytes.NewReader(raw), c, m, batchRows, emit, importOptions{})
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

func importParquet(ctx context.Context, r parquet.ReaderAtSeeker, c *Converter, m *Mapping, batchRows int, emit func(arrow.Record) error, opt importOptions) (ImportReport, error) {
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
	sink := newRowSink(c, plan, batchSize(c, batchRows), emit)
	sink.observe = opt.observe
	if opt.header != nil {
		opt.header(header)
	}
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

// convertedBlock is one block of a file as a converter finished it: its
// records, its part of the report, or the error that stops the import.
type convertedBlock struct {
	seq  int
	recs []arrow.Record
	rep  ImportReport
	err  error
}

// emitInOrder hands the converters' records to emit in file order, however the
// blocks finish. A block's error, or emit's, stops the import: nothing of the bad
// block is emitted, the converters are cancelled and waited for.
func emitInOrder(ctx context.Context, cancel context.CancelFunc, results <-chan convertedBlock, emit func(arrow.Record) error) (ImportReport, error) {
	var rep ImportReport
	pending := map[int]convertedBlock{}
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
