package events

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/bitutil"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/privalytics/privalytics"
)

// segmentRows is the most rows one sealed in-memory record (and Parquet row group) holds.
const segmentRows = 1 << 20

// sealAsync starts a background seal unless one is scheduled or the store is closing.
func (t *tenant) sealAsync() {
	if !t.sealing.CompareAndSwap(false, true) {
		return
	}
	if !t.s.goWorker(func() {
		defer t.sealing.Store(false)
		if err := t.sealNow(); err != nil {
			t.s.log.Error("sealing failed; the rows stay in the log and are sealed with the next seal", "tenant", t.id, "err", err)
		}
	}) {
		t.sealing.Store(false)
	}
}

// sealNow turns every closed log into one sorted Parquet segment. A crash at any
// step leaves the old state (logs, old manifest) or the new one: the segment is
// named by the manifest only after it is fsynced, and logs are removed only after
// the manifest is. Appends are blocked only while the log is rotated.
func (t *tenant) sealNow() error {
	t.sealRun.Lock()
	defer t.sealRun.Unlock()
	return t.sealLocked()
}

// sealLocked is sealNow for a caller that holds sealRun.
func (t *tenant) sealLocked() error {
	// 1. Rotate the log: appends from now on go to a new file.
	t.wmu.Lock()
	if t.logRows == 0 || t.logClosed {
		t.wmu.Unlock()
		return nil
	}
	through := t.logSeq
	if err := t.openLog(through + 1); err != nil {
		t.wmu.Unlock()
		return err
	}
	t.logRows = 0
	t.wmu.Unlock()

	// 2. The records of the closed logs.
	t.mu.Lock()
	var recs []privalytics.Chunk
	for i, c := range t.chunks {
		if m := t.meta[i]; m.seq != 0 && m.seq <= through {
			recs = append(recs, c)
		}
	}
	t.mu.Unlock()
	if len(recs) == 0 {
		// Every row of the closed logs was erased or purged: no segment, but
		// the logs still go, since they hold those rows.
		return t.dropLogs(through)
	}

	// 3. Merge into big records sorted by (subject, time): compact dictionaries,
	// one subject's rows together for the executor, and small files (subjects
	// and timestamps compress well once sorted).
	merged := mergeSorted(t.arrow, recs)

	// 4. Write and fsync the segment.
	name := fmt.Sprintf("%08d.parquet", through)
	path := filepath.Join(t.dir, "segments", name)
	recsOnly := make([]arrow.Record, len(merged))
	rows := 0
	for i, c := range merged {
		recsOnly[i] = c.Record
		rows += int(c.Record.NumRows())
	}
	size, sum, err := writeSegment(path, t.arrow, recsOnly, t.keys)
	if err != nil {
		fsys.Remove(path) // never named by a manifest: nothing else knows of it
		return fmt.Errorf("events: write segment %s: %w", path, err)
	}
	if hook := t.s.crashBeforeManifest; hook != nil {
		if err := hook(); err != nil {
			return err
		}
	}

	// The rows as memory holds them, built before taking mu.
	var memory []privalytics.Chunk
	for _, c := range merged {
		memory = append(memory, memoryChunks(t.arrow, c)...)
	}

	// 5. Swap the manifest. It also keeps the recent idempotency keys, since the
	// logs that hold them are about to go.
	t.mu.Lock()
	m := t.man
	m.Segments = append(slices.Clone(m.Segments), segment{File: name, Rows: rows, Bytes: size, CRC: sum})
	m.SealedThrough = through
	m.Idempotency = t.idemItems()
	t.mu.Unlock()
	if err := t.writeManifest(&m); err != nil {
		// Whether or not the rename happened, the state on disk is whole: the
		// old manifest with the logs, or the new one with the segment.
		return fmt.Errorf("events: write manifest: %w", err)
	}

	// 6. Show the merged records instead of the log's. The visible rows are the
	// same, so the version stays.
	t.mu.Lock()
	t.man = m
	chunks := make([]privalytics.Chunk, 0, len(t.chunks)+len(merged))
	meta := make([]chunkMeta, 0, cap(chunks))
	for i, c := range t.chunks {
		if t.meta[i].seq == 0 {
			chunks, meta = append(chunks, c), append(meta, t.meta[i])
		}
	}
	for _, c := range memory {
		t.nextID++
		chunks, meta = append(chunks, c), append(meta, chunkMeta{id: t.nextID, seq: 0, level: fullLevel})
	}
	for i, c := range t.chunks {
		if t.meta[i].seq > through {
			chunks, meta = append(chunks, c), append(meta, t.meta[i])
		}
	}
	t.chunks, t.meta = chunks, meta
	t.mu.Unlock()

	// 7. The sealed logs are no longer needed; Open deletes them if a crash
	// comes first.
	t.removeLogs(through)

	// 8. The segment's load image: the records memory now holds, so the
	// next restart reads them back without decoding Parquet (image.go).
	pieces := make([]arrow.Record, len(memory))
	for i, c := range memory {
		pieces[i] = c.Record
	}
	t.writeImageLocked(m.Segments[len(m.Segments)-1], pieces)
	return nil
}

// dropLogs marks the logs through seq sealed without a segment (their rows are
// all hidden), then removes them. Callers hold sealRun.
func (t *tenant) dropLogs(through int) error {
	t.mu.Lock()
	m := t.man
	m.SealedThrough = through
	m.DroppedThrough = max(m.DroppedThrough, through)
	m.Idempotency = t.idemItems()
	t.mu.Unlock()
	if err := t.writeManifest(&m); err != nil {
		return fmt.Errorf("events: write manifest: %w", err)
	}
	t.mu.Lock()
	t.man = m
	for i := range t.meta {
		if s := t.meta[i].seq; s != 0 && s <= through {
			t.meta[i].seq = 0 // empty records left by erasure; none remain normally
		}
	}
	t.mu.Unlock()
	t.removeLogs(through)
	return nil
}

// idemItems lists the remembered idempotency keys, oldest first. Callers hold mu.
func (t *tenant) idemItems() []idemItem {
	out := make([]idemItem, 0, len(t.idemFIFO))
	for _, k := range t.idemFIFO {
		out = append(out, idemItem{Key: k, Rows: t.idem[k]})
	}
	return out
}

// removeLogs deletes the log files numbered through seq.
func (t *tenant) removeLogs(through int) {
	seqs, _ := logFiles(filepath.Join(t.dir, "wal"))
	for _, seq := range seqs {
		if seq <= through {
			fsys.Remove(filepath.Join(t.dir, "wal", logName(seq)))
		}
	}
}

// rowRef names one row of one source record.
type rowRef struct{ c, r uint32 }

// concatRecords joins records, in order, into one with one dictionary per string column.
func concatRecords(schema *arrow.Schema, recs []arrow.Record) arrow.Record {
	if len(recs) == 1 {
		return recs[0]
	}
	n := 0
	for _, r := range recs {
		n += int(r.NumRows())
	}
	refs := make([]rowRef, 0, n)
	for ci, r := range recs {
		for i := range uint32(r.NumRows()) {
			refs = append(refs, rowRef{uint32(ci), i})
		}
	}
	return gather(schema, recs, refs)
}

// mergeSorted joins chunks into records of at most segmentRows rows sorted by
// subject then time, carrying their dense subject numbers along.
func mergeSorted(schema *arrow.Schema, chunks []privalytics.Chunk) []privalytics.Chunk {
	type key struct {
		subj uint64
		ts   int64
		ref  rowRef
	}
	n := 0
	recs := make([]arrow.Record, len(chunks))
	for i, c := range chunks {
		n += int(c.Record.NumRows())
		recs[i] = c.Record
	}
	keys := make([]key, 0, n)
	for ci, c := range chunks {
		subj := privalytics.Uint64s(c.Record.Column(0))
		ts := c.Record.Column(1).(*array.Timestamp).TimestampValues()
		for i := range subj {
			keys = append(keys, key{subj[i], int64(ts[i]), rowRef{uint32(ci), uint32(i)}})
		}
	}
	slices.SortFunc(keys, func(a, b key) int {
		switch {
		case a.subj != b.subj:
			return cmpOrder(a.subj, b.subj)
		case a.ts != b.ts:
			return cmpOrder(a.ts, b.ts)
		case a.ref.c != b.ref.c:
			return cmpOrder(a.ref.c, b.ref.c)
		}
		return cmpOrder(a.ref.r, b.ref.r)
	})
	var out []privalytics.Chunk
	for start := 0; start < len(keys); start += segmentRows {
		part := keys[start:min(start+segmentRows, len(keys))]
		refs := make([]rowRef, len(part))
		nums := make([]uint32, len(part))
		for i, k := range part {
			refs[i] = k.ref
			nums[i] = chunks[k.ref.c].Subjects[k.ref.r]
		}
		out = append(out, privalytics.Chunk{Record: gather(schema, recs, refs), Subjects: nums})
	}
	return out
}

func cmpOrder[T int64 | uint64 | uint32](a, b T) int {
	if a < b {
		return -1
	} else if a > b {
		return 1
	}
	return 0
}

// zeroBytes backs every value buffer that is all zeros (a column that is
// constant or always null: a shop with one store or no channel), so such columns
// cost nothing per row. Buffers are never written after they are built.
var zeroBytes = sync.OnceValue(func() []byte { return make([]byte, 8*segmentRows) })

// valueBuffer wraps b, swapping it for the shared zeros when it is all zeros.
func valueBuffer(b []byte) *memory.Buffer {
	for _, x := range b {
		if x != 0 {
			return memory.NewBufferBytes(b)
		}
	}
	return memory.NewBufferBytes(zeroBytes()[:len(b)])
}

// gather builds one record from the rows refs names, in that order. String
// columns get one dictionary holding the values the sources' dictionaries have;
// every buffer has exactly the size it needs.
func gather(schema *arrow.Schema, recs []arrow.Record, refs []rowRef) arrow.Record {
	n := len(refs)
	wide := make([]arrow.Record, len(recs))
	for i, r := range recs {
		wide[i] = privalytics.WidenRecord(r, schema) // in-memory chunks may be compact
	}
	recs = wide
	cols := make([]arrow.Array, schema.NumFields())
	for f := range cols {
		field := schema.Field(f)
		srcs := make([]arrow.ArrayData, len(recs))
		nulls := 0
		for i, r := range recs {
			srcs[i] = r.Column(f).Data()
			nulls += srcs[i].NullN()
		}
		var validity *memory.Buffer
		nullCount := 0
		if nulls > 0 {
			bits := make([]byte, bitutil.BytesForBits(int64(n)))
			for i, ref := range refs {
				d := srcs[ref.c]
				if d.NullN() == 0 || bitutil.BitIsSet(d.Buffers()[0].Bytes(), d.Offset()+int(ref.r)) {
					bitutil.SetBit(bits, i)
				} else {
					nullCount++
				}
			}
			if nullCount > 0 {
				validity = memory.NewBufferBytes(bits)
			}
		}
		var data arrow.ArrayData
		switch typ := field.Type.(type) {
		case *arrow.DictionaryType:
			idx, dict := unifyDictionary(srcs, refs)
			data = array.NewDataWithDictionary(typ, n, []*memory.Buffer{validity, valueBuffer(arrow.Int32Traits.CastToBytes(idx))}, nullCount, 0, dict)
		case *arrow.BooleanType:
			bits := make([]byte, bitutil.BytesForBits(int64(n)))
			for i, ref := range refs {
				d := srcs[ref.c]
				if bitutil.BitIsSet(d.Buffers()[1].Bytes(), d.Offset()+int(ref.r)) {
					bitutil.SetBit(bits, i)
				}
			}
			data = array.NewData(typ, n, []*memory.Buffer{validity, valueBuffer(bits)}, nil, nullCount, 0)
		default: // every other stored type is 8 bytes wide: uint64, int64, float64, timestamp
			vals := make([]uint64, n)
			src := make([][]uint64, len(srcs))
			for i, d := range srcs {
				src[i] = arrow.Uint64Traits.CastFromBytes(d.Buffers()[1].Bytes())[d.Offset():]
			}
			for i, ref := range refs {
				vals[i] = src[ref.c][ref.r]
			}
			data = array.NewData(typ, n, []*memory.Buffer{validity, valueBuffer(arrow.Uint64Traits.CastToBytes(vals))}, nil, nullCount, 0)
		}
		cols[f] = array.MakeFromData(data)
	}
	return array.NewRecord(schema, cols, int64(n))
}

// unifyDictionary returns the dictionary codes of the referenced rows in one new
// dictionary, which keeps only values some row uses.
func unifyDictionary(srcs []arrow.ArrayData, refs []rowRef) ([]int32, *array.Data) {
	codes := make([][]int32, len(srcs)) // source → old code → new code (-1: not yet)
	dicts := make([]*array.String, len(srcs))
	idx := make([][]int32, len(srcs))
	for i, d := range srcs {
		dicts[i] = array.MakeFromData(d.Dictionary()).(*array.String)
		codes[i] = make([]int32, dicts[i].Len())
		for k := range codes[i] {
			codes[i][k] = -1
		}
		idx[i] = arrow.Int32Traits.CastFromBytes(d.Buffers()[1].Bytes())[d.Offset():]
	}
	seen := map[string]int32{}
	var values []string
	size := 0
	out := make([]int32, len(refs))
	for i, ref := range refs {
		d := srcs[ref.c]
		if d.NullN() > 0 && !bitutil.BitIsSet(d.Buffers()[0].Bytes(), d.Offset()+int(ref.r)) {
			continue // a null row keeps code 0
		}
		old := idx[ref.c][ref.r]
		code := codes[ref.c][old]
		if code < 0 {
			s := dicts[ref.c].Value(int(old))
			var ok bool
			if code, ok = seen[s]; !ok {
				code = int32(len(values))
				seen[s] = code
				values = append(values, s)
				size += len(s)
			}
			codes[ref.c][old] = code
		}
		out[i] = code
	}
	b := array.NewStringBuilder(memory.DefaultAllocator)
	defer b.Release()
	b.Reserve(len(values))
	b.ReserveData(size)
	b.AppendValues(values, nil)
	dict := b.NewStringArray()
	return out, dict.Data().(*array.Data)
}

// writeSegment writes records to a Parquet file (zstd, dictionary encoding, the
// time column delta-encoded), fsyncs it and its directory, and returns the
// file's size and CRC-32C, which the manifest keeps so a load verifies every
// byte (plaintext segments too: a flipped byte must fail the load, never drop
// or change rows).
func writeSegment(path string, schema *arrow.Schema, recs []arrow.Record, keys *tenantKeys) (size int64, sum uint32, err error) {
	f, err := fsys.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, 0, err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	cw := &crcWriter{w: bw}
	if keys != nil {
		// The Parquet file is built in memory and written sealed in chunks.
		var buf bytes.Buffer
		if err = writeParquet(&buf, schema, recs); err == nil {
			err = keys.sealSegment(cw, buf.Bytes())
		}
	} else {
		err = writeParquet(cw, schema, recs)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, 0, err
	}
	return cw.n, cw.sum, syncDir(filepath.Dir(path))
}

// crcWriter counts and checksums what passes through it.
type crcWriter struct {
	w   io.Writer
	n   int64
	sum uint32
}

func (c *crcWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.sum = crc32.Update(c.sum, crcTable, p[:n])
	c.n += int64(n)
	return n, err
}

// writeParquet writes records as one Parquet file to w, closing w if it is an io.Closer.
func writeParquet(f io.Writer, schema *arrow.Schema, recs []arrow.Record) error {
	props := parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithDictionaryDefault(true),
		parquet.WithMaxRowGroupLength(segmentRows),
		parquet.WithDictionaryFor(schema.Field(1).Name, false),
		parquet.WithEncodingFor(schema.Field(1).Name, parquet.Encodings.DeltaBinaryPacked),
	)
	w, err := pqarrow.NewFileWriter(schema, f, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		if c, ok := f.(io.Closer); ok {
			c.Close()
		}
		return err
	}
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			w.Close()
			return err
		}
	}
	return w.Close() // closes f when it is an io.Closer
}

// readSegmentFile reads a segment file, checks it against its manifest entry
// (size and CRC-32C, when the entry has them: older builds wrote none) and its
// format, and returns the Parquet bytes, decrypted.
func readSegmentFile(path string, seg segment, keys *tenantKeys) ([]byte, error) {
	raw, _, err := readSegmentRows(path, seg, keys)
	return raw, err
}

// readSegmentRows is readSegmentFile that also returns the rows the matching
// manifest version says the file holds.
func readSegmentRows(path string, seg segment, keys *tenantKeys) ([]byte, int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	rows, err := seg.match(raw)
	if err != nil {
		return nil, 0, err
	}
	raw, err = segmentPlain(raw, keys)
	return raw, rows, err
}

// segmentPlain checks a segment file's format and decrypts it.
func segmentPlain(raw []byte, keys *tenantKeys) ([]byte, error) {
	switch {
	case len(raw) >= 4 && bytes.Equal(raw[:4], encSegmentMagic[:]):
		if keys == nil {
			return nil, errors.New("the segment is encrypted at rest; open the store with the master key")
		}
		return keys.openSegment(raw)
	case len(raw) >= 4 && raw[0] == 'P' && raw[1] == 'V' && raw[2] == 'S' && raw[3] > '1' && raw[3] <= '9':
		return nil, &formatError{fmt.Sprintf("segment format %q was written by a newer build; this build reads PVS1 and plain Parquet: run the newer build", raw[:4])}
	}
	return raw, nil
}

// segmentRowCount reads the row count from a segment's Parquet footer.
func segmentRowCount(path string, keys *tenantKeys) (int, error) {
	raw, err := readSegmentFile(path, segment{}, keys)
	if err != nil {
		return 0, err
	}
	pf, err := file.NewParquetReader(bytes.NewReader(raw))
	if err != nil {
		return 0, err
	}
	defer pf.Close()
	return int(pf.NumRows()), nil
}

// readSegment loads a segment's records in the tenant's Arrow schema, in
// records of at most piece rows, each rebuilt by gather (the Parquet reader's
// buffers carry slack and per-batch dictionaries). Loading into memory asks
// for chunkRows pieces, which memoryChunks then only has to compact. The file
// must hold the rows its manifest entry says. The Parquet reader trusts its
// input and may panic on a damaged file; that is an error here, never a crash.
func readSegment(path string, seg segment, schema *arrow.Schema, keys *tenantKeys, piece int) (out []arrow.Record, err error) {
	raw, want, err := readSegmentRows(path, seg, keys)
	if err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("the Parquet reader failed: %v", r)
		}
	}()
	pf, err := file.NewParquetReader(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	defer pf.Close()
	// The reader reserves a whole batch per column up front: a small segment
	// asks for no more than it holds.
	props := pqarrow.ArrowReadProperties{BatchSize: max(min(segmentRows, pf.NumRows()), 1)}
	for i, fld := range schema.Fields() {
		if _, ok := fld.Type.(*arrow.DictionaryType); ok {
			props.SetReadDict(i, true)
		}
	}
	fr, err := pqarrow.NewFileReader(pf, props, memory.DefaultAllocator)
	if err != nil {
		return nil, err
	}
	rr, err := fr.GetRecordReader(context.Background(), nil, nil)
	if err != nil {
		return nil, err
	}
	defer rr.Release()
	rows := 0
	for rr.Next() {
		r := rr.Record()
		if int(r.NumCols()) != schema.NumFields() {
			return nil, fmt.Errorf("segment has %d columns, the tenant's schema %d", r.NumCols(), schema.NumFields())
		}
		for i := range int(r.NumCols()) {
			if got := r.Column(i).DataType(); !arrow.TypeEqual(got, schema.Field(i).Type) {
				return nil, fmt.Errorf("segment column %s is %s, the tenant's schema says %s", schema.Field(i).Name, got, schema.Field(i).Type)
			}
		}
		rows += int(r.NumRows())
		for lo := 0; lo < int(r.NumRows()); lo += piece {
			refs := make([]rowRef, min(piece, int(r.NumRows())-lo))
			for i := range refs {
				refs[i] = rowRef{0, uint32(lo + i)}
			}
			out = append(out, gather(schema, []arrow.Record{r}, refs))
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if want > 0 && rows != want {
		return nil, fmt.Errorf("the segment holds %d rows, the MANIFEST says %d", rows, want)
	}
	return out, nil
}
