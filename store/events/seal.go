package events

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/privalytics/privalytics"
)

// segmentRows is the most rows one in-memory record (and Parquet row group) holds.
const segmentRows = 1 << 20

func (t *tenant) sealAsync() {
	t.sealMu.Lock()
	if t.sealing {
		t.sealMu.Unlock()
		return
	}
	t.sealing = true
	t.sealMu.Unlock()
	t.s.sealers.Add(1)
	go func() {
		defer t.s.sealers.Done()
		if err := t.sealNow(); err != nil {
			t.s.log.Error("sealing failed; the log is kept and sealing is retried later", "tenant", t.id, "err", err)
		}
		t.sealMu.Lock()
		t.sealing = false
		t.sealMu.Unlock()
	}()
}

// sealNow turns every closed log into one sorted Parquet segment. A crash at any
// step leaves the old state (logs, old manifest) or the new one: the segment is
// only named by the manifest after it is fsynced, and logs are removed only after
// the manifest is.
func (t *tenant) sealNow() error {
	t.sealRun.Lock()
	defer t.sealRun.Unlock()
	// 1. Rotate the log: what follows goes to a new file.
	t.wmu.Lock()
	if t.logRows == 0 || t.log == nil {
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
		if t.sources[i] != 0 && t.sources[i] <= through {
			recs = append(recs, c)
		}
	}
	t.mu.Unlock()
	if len(recs) == 0 {
		return nil
	}

	// 3. Merge into big records sorted by (subject, time): compact dictionaries,
	// runs of one subject for the executor, and small files (subjects and
	// timestamps compress well once sorted).
	merged := mergeSorted(t.arrow, recs)

	// 4. Write and fsync the segment.
	name := fmt.Sprintf("%08d.parquet", through)
	path := filepath.Join(t.dir, "segments", name)
	if err := writeSegment(path, t.arrow, merged); err != nil {
		os.Remove(path)
		return fmt.Errorf("events: write segment: %w", err)
	}
	rows := 0
	for _, r := range merged {
		rows += int(r.NumRows())
	}

	// 5. Swap the manifest.
	t.mu.Lock()
	m := t.man
	m.Segments = append(slices.Clone(m.Segments), segment{File: name, Rows: rows})
	m.SealedThrough = through
	m.Idempotency = make([]idemItem, 0, len(t.idemFIFO))
	for _, k := range t.idemFIFO {
		m.Idempotency = append(m.Idempotency, idemItem{Key: k, Rows: t.idem[k]})
	}
	t.mu.Unlock()
	if err := writeManifest(t.dir, m); err != nil {
		return fmt.Errorf("events: write manifest: %w", err)
	}

	// 6. Show the merged records instead of the log's small ones.
	t.mu.Lock()
	t.man = m
	var chunks []privalytics.Chunk
	var sources []int
	for i, c := range t.chunks {
		if t.sources[i] == 0 {
			chunks, sources = append(chunks, c), append(sources, 0)
		}
	}
	for _, r := range merged {
		subj := r.Column(0).(*array.Uint64).Uint64Values()
		nums := make([]uint32, len(subj))
		for i, s := range subj {
			nums[i] = t.subjects[s]
		}
		chunks, sources = append(chunks, privalytics.Chunk{Record: r, Subjects: nums}), append(sources, 0)
	}
	for i, c := range t.chunks {
		if t.sources[i] > through {
			chunks, sources = append(chunks, c), append(sources, t.sources[i])
		}
	}
	t.chunks, t.sources = chunks, sources
	t.mu.Unlock()

	// 7. The sealed logs are no longer needed.
	seqs, _ := logFiles(filepath.Join(t.dir, "wal"))
	for _, seq := range seqs {
		if seq <= through {
			os.Remove(filepath.Join(t.dir, "wal", logName(seq)))
		}
	}
	return nil
}

// mergeSorted concatenates chunks into records of at most segmentRows rows, sorted
// by subject then time, with one dictionary per string column.
func mergeSorted(schema *arrow.Schema, chunks []privalytics.Chunk) []arrow.Record {
	type ref struct {
		subj uint64
		ts   int64
		c, r uint32
	}
	n := 0
	for _, c := range chunks {
		n += int(c.Record.NumRows())
	}
	refs := make([]ref, 0, n)
	for ci, c := range chunks {
		subj := c.Record.Column(0).(*array.Uint64).Uint64Values()
		ts := c.Record.Column(1).(*array.Timestamp).TimestampValues()
		for i := range subj {
			refs = append(refs, ref{subj[i], int64(ts[i]), uint32(ci), uint32(i)})
		}
	}
	slices.SortFunc(refs, func(a, b ref) int {
		if a.subj != b.subj {
			if a.subj < b.subj {
				return -1
			}
			return 1
		}
		if a.ts != b.ts {
			if a.ts < b.ts {
				return -1
			}
			return 1
		}
		return 0
	})
	// Global dictionaries and per-chunk translations.
	nf := schema.NumFields()
	trans := make([][][]int32, nf) // field → chunk → old code → new code
	dicts := make([][]string, nf)
	for f := 0; f < nf; f++ {
		if _, ok := schema.Field(f).Type.(*arrow.DictionaryType); !ok {
			continue
		}
		codes := map[string]int32{}
		trans[f] = make([][]int32, len(chunks))
		for ci, c := range chunks {
			d := c.Record.Column(f).(*array.Dictionary).Dictionary().(*array.String)
			tr := make([]int32, d.Len())
			for k := range tr {
				s := d.Value(k)
				code, ok := codes[s]
				if !ok {
					code = int32(len(dicts[f]))
					codes[s] = code
					dicts[f] = append(dicts[f], s)
				}
				tr[k] = code
			}
			trans[f][ci] = tr
		}
	}
	var out []arrow.Record
	mem := memory.DefaultAllocator
	for start := 0; start < len(refs); start += segmentRows {
		part := refs[start:min(start+segmentRows, len(refs))]
		cols := make([]arrow.Array, nf)
		for f := 0; f < nf; f++ {
			field := schema.Field(f)
			valid := make([]bool, len(part))
			anyNull := false
			for i, r := range part {
				valid[i] = chunks[r.c].Record.Column(f).IsValid(int(r.r))
				anyNull = anyNull || !valid[i]
			}
			if !anyNull {
				valid = nil
			}
			switch typ := field.Type.(type) {
			case *arrow.DictionaryType:
				idx := make([]int32, len(part))
				for i, r := range part {
					if valid == nil || valid[i] {
						idx[i] = trans[f][r.c][chunks[r.c].Record.Column(f).(*array.Dictionary).GetValueIndex(int(r.r))]
					}
				}
				ib := array.NewInt32Builder(mem)
				ib.AppendValues(idx, valid)
				ind := ib.NewArray()
				sb := array.NewStringBuilder(mem)
				sb.AppendValues(dicts[f], nil)
				dict := sb.NewArray()
				cols[f] = array.NewDictionaryArray(typ, ind, dict)
			case *arrow.TimestampType:
				v := make([]arrow.Timestamp, len(part))
				for i, r := range part {
					v[i] = chunks[r.c].Record.Column(f).(*array.Timestamp).Value(int(r.r))
				}
				b := array.NewTimestampBuilder(mem, typ)
				b.AppendValues(v, valid)
				cols[f] = b.NewArray()
			default:
				switch field.Type.ID() {
				case arrow.UINT64:
					v := make([]uint64, len(part))
					for i, r := range part {
						v[i] = r.subj
					}
					b := array.NewUint64Builder(mem)
					b.AppendValues(v, valid)
					cols[f] = b.NewArray()
				case arrow.INT64:
					v := make([]int64, len(part))
					for i, r := range part {
						v[i] = chunks[r.c].Record.Column(f).(*array.Int64).Value(int(r.r))
					}
					b := array.NewInt64Builder(mem)
					b.AppendValues(v, valid)
					cols[f] = b.NewArray()
				case arrow.FLOAT64:
					v := make([]float64, len(part))
					for i, r := range part {
						v[i] = chunks[r.c].Record.Column(f).(*array.Float64).Value(int(r.r))
					}
					b := array.NewFloat64Builder(mem)
					b.AppendValues(v, valid)
					cols[f] = b.NewArray()
				case arrow.BOOL:
					v := make([]bool, len(part))
					for i, r := range part {
						v[i] = chunks[r.c].Record.Column(f).(*array.Boolean).Value(int(r.r))
					}
					b := array.NewBooleanBuilder(mem)
					b.AppendValues(v, valid)
					cols[f] = b.NewArray()
				}
			}
		}
		out = append(out, array.NewRecord(schema, cols, int64(len(part))))
	}
	return out
}

// writeSegment writes records to a Parquet file (zstd; time delta-encoded) and
// fsyncs it and its directory.
func writeSegment(path string, schema *arrow.Schema, recs []arrow.Record) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	props := parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithDictionaryDefault(true),
		parquet.WithMaxRowGroupLength(segmentRows),
		parquet.WithDictionaryFor(schema.Field(1).Name, false),
		parquet.WithEncodingFor(schema.Field(1).Name, parquet.Encodings.DeltaBinaryPacked),
	)
	w, err := pqarrow.NewFileWriter(schema, f, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		f.Close()
		return err
	}
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			w.Close()
			return err
		}
	}
	if err := w.Close(); err != nil { // closes f
		return err
	}
	g, err := os.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	err = g.Sync()
	g.Close()
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// readSegment loads a segment's records with the tenant's Arrow schema.
func readSegment(path string, schema *arrow.Schema) ([]arrow.Record, error) {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, err
	}
	defer pf.Close()
	props := pqarrow.ArrowReadProperties{BatchSize: segmentRows}
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
	var out []arrow.Record
	for rr.Next() {
		r := rr.Record()
		if int(r.NumCols()) != schema.NumFields() {
			return nil, fmt.Errorf("segment has %d columns, the schema %d", r.NumCols(), schema.NumFields())
		}
		cols := make([]arrow.Array, r.NumCols())
		for i := range cols {
			c := r.Column(i)
			if !arrow.TypeEqual(c.DataType(), schema.Field(i).Type) {
				return nil, fmt.Errorf("segment column %s is %s, the schema says %s", schema.Field(i).Name, c.DataType(), schema.Field(i).Type)
			}
			c.Retain()
			cols[i] = c
		}
		out = append(out, array.NewRecord(schema, cols, r.NumRows()))
	}
	return out, nil
}
