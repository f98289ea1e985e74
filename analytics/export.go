package analytics

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/privalytics/privalytics"
)

// SnapshotFilePattern names the Parquet files ExportSnapshot writes in its directory.
const SnapshotFilePattern = "part-*.parquet"

// ExportSnapshot writes the rows of snap a query may see — those of customers
// not hidden (the consent mask of one purpose; erased rows are already out of
// every snapshot) — to Parquet files in dir, one per chunk, in the tenant's
// stored column order. The subject column holds pseudonyms: an HMAC of the
// snapshot's subject number under key, so a fresh key per export makes two
// exports unlinkable and no stored identifier leaves the server. It returns the
// rows written and the files.
func ExportSnapshot(ctx context.Context, dir string, snap *privalytics.Snapshot, hidden []bool, key []byte) (int, []string, error) {
	if len(key) < 16 {
		return 0, nil, errors.New("export: the pseudonym key must be at least 16 bytes")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, nil, fmt.Errorf("export: %w", err)
	}
	rows := 0
	var files []string
	for i, ch := range snap.Chunks {
		if err := ctx.Err(); err != nil {
			return rows, files, err
		}
		rec, err := exportRecord(ch, hidden, key)
		if err != nil {
			return rows, files, fmt.Errorf("export: chunk %d: %w", i, err)
		}
		if rec.NumRows() == 0 {
			rec.Release()
			continue
		}
		name := filepath.Join(dir, fmt.Sprintf("part-%05d.parquet", i))
		err = writeExport(name, rec)
		rows += int(rec.NumRows())
		rec.Release()
		if err != nil {
			return rows, files, fmt.Errorf("export: %w", err)
		}
		files = append(files, name)
	}
	return rows, files, nil
}

// exportRecord is ch without hidden customers' rows, its subject column
// replaced by pseudonyms.
func exportRecord(ch privalytics.Chunk, hidden []bool, key []byte) (arrow.Record, error) {
	rec := ch.Record
	n := int(rec.NumRows())
	// Runs [lo, hi) of visible rows.
	var runs [][2]int
	for j := 0; j < n; {
		if s := ch.Subjects[j]; hidden != nil && int(s) < len(hidden) && hidden[s] {
			j++
			continue
		}
		lo := j
		for j < n && (hidden == nil || int(ch.Subjects[j]) >= len(hidden) || !hidden[ch.Subjects[j]]) {
			j++
		}
		runs = append(runs, [2]int{lo, j})
	}
	mac := hmac.New(sha256.New, key)
	subj := array.NewUint64Builder(memory.DefaultAllocator)
	defer subj.Release()
	var buf [4]byte
	for _, r := range runs {
		for j := r[0]; j < r[1]; j++ {
			mac.Reset()
			binary.BigEndian.PutUint32(buf[:], ch.Subjects[j])
			mac.Write(buf[:])
			subj.Append(binary.BigEndian.Uint64(mac.Sum(nil)))
		}
	}
	cols := make([]arrow.Array, rec.NumCols())
	cols[0] = subj.NewArray()
	fields := append([]arrow.Field(nil), rec.Schema().Fields()...)
	fields[0].Type, fields[0].Nullable = arrow.PrimitiveTypes.Uint64, false
	for c := 1; c < int(rec.NumCols()); c++ {
		parts := make([]arrow.Array, 0, len(runs))
		for _, r := range runs {
			parts = append(parts, array.NewSlice(rec.Column(c), int64(r[0]), int64(r[1])))
		}
		var err error
		if len(parts) == 0 {
			cols[c] = array.NewSlice(rec.Column(c), 0, 0)
		} else {
			cols[c], err = array.Concatenate(parts, memory.DefaultAllocator)
		}
		for _, p := range parts {
			p.Release()
		}
		if err != nil {
			return nil, err
		}
	}
	out := array.NewRecord(arrow.NewSchema(fields, nil), cols, int64(cols[0].Len()))
	for _, c := range cols {
		c.Release()
	}
	return out, nil
}

func writeExport(name string, rec arrow.Record) error {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithDictionaryDefault(true))
	w, err := pqarrow.NewFileWriter(rec.Schema(), f, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		f.Close()
		return err
	}
	if err := w.Write(rec); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// ReadSnapshotFile reads one exported Parquet file back as chunks (subject
// numbers all zero: remote engines key customers by the pseudonym column).
func ReadSnapshotFile(name string) ([]privalytics.Chunk, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pf, err := file.NewParquetReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer pf.Close()
	props := pqarrow.ArrowReadProperties{BatchSize: 1 << 16}
	fr, err := pqarrow.NewFileReader(pf, props, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	sch, err := fr.Schema()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for i, fld := range sch.Fields() {
		if _, ok := fld.Type.(*arrow.DictionaryType); ok {
			fr.Props.SetReadDict(i, true)
		}
	}
	rr, err := fr.GetRecordReader(context.Background(), nil, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer rr.Release()
	var out []privalytics.Chunk
	for rr.Next() {
		r := rr.Record()
		r.Retain()
		out = append(out, privalytics.Chunk{Record: r, Subjects: make([]uint32, r.NumRows())})
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// ExportForPurpose exports a tenant's current snapshot as a query for purpose
// would see it (erased rows gone, customers without consent for the purpose
// left out) to dir, under a fresh random pseudonym key that is not kept: the
// export cannot be linked to stored identifiers or to another export.
func ExportForPurpose(ctx context.Context, events Snapshots, consent Consent, t *privalytics.Tenant, purpose, dir string) (int, []string, error) {
	if purpose == "" {
		purpose = DefaultPurpose
	}
	if !slices.Contains(t.Purposes, purpose) {
		return 0, nil, invalid("purpose %q is not declared by tenant %s; declared: %s", purpose, t.ID, strings.Join(t.Purposes, ", "))
	}
	snap, err := events.Snapshot(ctx, t.ID, t.Schema)
	if err != nil {
		return 0, nil, err
	}
	hidden, _, err := consent.Hidden(ctx, t, purpose, snap)
	if err != nil {
		return 0, nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return 0, nil, err
	}
	return ExportSnapshot(ctx, dir, snap, hidden, key)
}
