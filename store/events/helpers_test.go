package events

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/privalytics/privalytics"
)

var retail = privalytics.DefaultRetailSchema()

// testRecord builds n rows of the default retail schema for batch b. Every row
// has a unique order_id "b<b>-<i>" (tests use it as the row's identity), subjects
// repeat across batches, and optional columns are sometimes null.
func testRecord(b, n int) arrow.Record {
	as := retail.Arrow()
	rb := array.NewRecordBuilder(memory.DefaultAllocator, as)
	defer rb.Release()
	for i := range n {
		for f := range as.NumFields() {
			fb := rb.Field(f)
			switch name := as.Field(f).Name; name {
			case privalytics.SubjectColumn:
				fb.(*array.Uint64Builder).Append(uint64((b*7+i)%13) * 0x9E3779B97F4A7C15)
			case "ts":
				fb.(*array.TimestampBuilder).Append(arrow.Timestamp(1_735_689_600_000_000 + int64(b*1000+i)*1_000_000))
			case "type":
				fb.(*array.BinaryDictionaryBuilder).AppendString([]string{privalytics.EventPurchase, privalytics.EventView, privalytics.EventRefund}[i%3])
			case "order_id":
				fb.(*array.BinaryDictionaryBuilder).AppendString(fmt.Sprintf("b%d-%d", b, i))
			case "quantity":
				fb.(*array.Int64Builder).Append(int64(i%5 + 1))
			case "amount":
				if i%4 == 3 {
					fb.AppendNull()
				} else {
					fb.(*array.Int64Builder).Append(int64(b*100_000 + i*1000))
				}
			case "channel":
				fb.AppendNull() // a column no row sets
			default: // store, category, product, country
				if (i+f)%5 == 0 {
					fb.AppendNull()
				} else {
					fb.(*array.BinaryDictionaryBuilder).AppendString(fmt.Sprintf("%s-%d", name, (i*f+b)%7))
				}
			}
		}
	}
	return rb.NewRecord()
}

// synthRecord builds n rows of the synthetic workload of BENCHMARKS.md (scaled):
// ~100k subjects with Zipf-like activity, a year of timestamps to the second,
// 50 stores, 20 categories, 2,000 products (each in one category) and log-normal
// amounts in cents (the decimal column has scale 3). Rows come as orders of 1 to
// 7 lines that share customer, time, store, channel and country, as the lines of
// a real order do.
func synthRecord(rng *rand.Rand, zipf *rand.Zipf, n int) arrow.Record {
	rb := array.NewRecordBuilder(memory.DefaultAllocator, retail.Arrow())
	defer rb.Release()
	cols := rb.Fields()
	const year = 365 * 24 * 3600
	for i := 0; i < n; {
		subj := zipf.Uint64()*0x9E3779B97F4A7C15 + 1
		ts := arrow.Timestamp((1_704_067_200 + rng.Int64N(year)) * 1_000_000)
		typ := []string{"purchase", "purchase", "purchase", "view", "refund"}[rng.IntN(5)]
		store := fmt.Sprintf("store-%02d", rng.IntN(50))
		channel := []string{"web", "app", "store"}[rng.IntN(3)]
		country := []string{"GB", "DE", "FR", "NL", "ES"}[rng.IntN(5)]
		order := fmt.Sprintf("o%08d", orderSeq.Add(1))
		for range min(1+rng.IntN(7), n-i) {
			product := rng.IntN(2000)
			cols[0].(*array.Uint64Builder).Append(subj)
			cols[1].(*array.TimestampBuilder).Append(ts)
			cols[2].(*array.BinaryDictionaryBuilder).AppendString(typ)
			cols[3].(*array.BinaryDictionaryBuilder).AppendString(store)
			cols[4].(*array.BinaryDictionaryBuilder).AppendString(channel)
			cols[5].(*array.BinaryDictionaryBuilder).AppendString(fmt.Sprintf("cat-%02d", product%20))
			cols[6].(*array.BinaryDictionaryBuilder).AppendString(fmt.Sprintf("p%04d", product))
			cols[7].(*array.BinaryDictionaryBuilder).AppendString(order)
			cols[8].(*array.Int64Builder).Append(int64(1 + rng.IntN(5)))
			cols[9].(*array.Int64Builder).Append(int64(math.Exp(3+rng.NormFloat64())*100) * 10)
			cols[10].(*array.BinaryDictionaryBuilder).AppendString(country)
			i++
		}
	}
	return rb.NewRecord()
}

// orderSeq numbers synthetic orders.
var orderSeq atomic.Uint64

// table is every row of some records, column by column (by stored column name),
// with rows ordered by order_id so two tables of the same rows compare equal
// whatever their chunking. Nulls are nil; strings are their dictionary values.
type table map[string][]any

func tableOf(t testing.TB, recs []arrow.Record) table {
	t.Helper()
	var rows [][]any
	var names []string
	for _, r := range recs {
		names = names[:0]
		for f := range int(r.NumCols()) {
			names = append(names, r.Schema().Field(f).Name)
		}
		for i := range int(r.NumRows()) {
			row := make([]any, r.NumCols())
			for f := range int(r.NumCols()) {
				row[f] = cell(t, r.Column(f), i)
			}
			rows = append(rows, row)
		}
	}
	order := slices.Index(names, "order_id")
	slices.SortFunc(rows, func(a, b []any) int { return strings.Compare(a[order].(string), b[order].(string)) })
	out := table{}
	for f, name := range names {
		col := make([]any, len(rows))
		for i, row := range rows {
			col[i] = row[f]
		}
		out[name] = col
	}
	return out
}

func cell(t testing.TB, a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Dictionary: // in memory, numbers and subjects may be dictionary-encoded too
		return cell(t, a.Dictionary(), a.GetValueIndex(i))
	case *array.String:
		return a.Value(i)
	case *array.Uint64:
		return a.Value(i)
	case *array.Int64:
		return a.Value(i)
	case *array.Timestamp:
		return int64(a.Value(i))
	case *array.Float64:
		return a.Value(i)
	case *array.Boolean:
		return a.Value(i)
	}
	t.Fatalf("unexpected column type %s", a.DataType())
	return nil
}

// snapshotTable reads the tenant "t1" and checks each chunk's shape.
func snapshotTable(t testing.TB, s *Store) table {
	t.Helper()
	snap := snapshot(t, s)
	recs := make([]arrow.Record, len(snap.Chunks))
	for i, ch := range snap.Chunks {
		recs[i] = ch.Record
		if len(ch.Subjects) != int(ch.Record.NumRows()) {
			t.Fatalf("chunk %d has %d subject numbers for %d rows", i, len(ch.Subjects), ch.Record.NumRows())
		}
	}
	return tableOf(t, recs)
}

func snapshot(t testing.TB, s *Store) *privalytics.Snapshot {
	t.Helper()
	snap, err := s.Snapshot(context.Background(), "t1", retail)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return snap
}

// batches builds test records for batch numbers [from, to).
func batches(from, to, rows int) []arrow.Record {
	var out []arrow.Record
	for b := from; b < to; b++ {
		out = append(out, testRecord(b, rows))
	}
	return out
}

// appendAll appends each record to "t1", keyed "k<first+i>".
func appendAll(t testing.TB, s *Store, first int, recs []arrow.Record) {
	t.Helper()
	for i, r := range recs {
		if _, err := s.Append(context.Background(), "t1", retail, privalytics.Batch{Record: r, IdempotencyKey: fmt.Sprintf("k%d", first+i)}); err != nil {
			t.Fatalf("append %d: %v", first+i, err)
		}
	}
}

// logBuffer collects what the store logs, safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// openStore opens a store with fsync on; logs go to lb when it is not nil.
func openStore(t testing.TB, dir string, sealRows int, lb *logBuffer) *Store {
	t.Helper()
	var w io.Writer = io.Discard
	if lb != nil {
		w = lb
	}
	s, err := Open(dir, Options{SealRows: sealRows, SyncWrites: true, Logger: slog.New(slog.NewTextHandler(w, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// frameOffsets returns where each frame of a log file starts, and the file's size.
func frameOffsets(t testing.TB, path string) ([]int64, int64) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for off := int64(0); off < int64(len(raw)); {
		offs = append(offs, off)
		n := int64(raw[off+4]) | int64(raw[off+5])<<8 | int64(raw[off+6])<<16 | int64(raw[off+7])<<24
		off += frameHeader + n
	}
	return offs, int64(len(raw))
}

// walFiles lists the tenant's log files in order.
func walFiles(t testing.TB, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "t1", "wal", "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	return files
}

// copyDir copies a store directory, to try several damages on one original.
func copyDir(t testing.TB, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), raw, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}
