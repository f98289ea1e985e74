package ingest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/store/events"
	"github.com/privalytics/privalytics/store/keyring"
	"github.com/privalytics/privalytics/synth"
)

// writeSynthCSV writes n synthetic events as CSV (the bench's workload).
func writeSynthCSV(tb testing.TB, path string, n int) {
	tb.Helper()
	cfg := synth.DefaultConfig()
	cfg.Events, cfg.Seed = n, 13
	g, err := synth.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString(strings.Join(synth.CSVHeader(), ",") + "\n")
	var ev synth.Event
	var buf []byte
	for g.Next(&ev) {
		buf = synth.AppendCSV(buf[:0], &ev)
		w.Write(buf)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

func TestBenchImport(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "events.csv")
	writeSynthCSV(t, path, 5_000)
	stored := 0
	res, err := BenchImport(context.Background(), path, "csv", testConverter(t), nil, 1_000, func(r arrow.Record) error {
		stored += int(r.NumRows())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if res.Rows != 5_000 || stored != 5_000 || res.Bytes != fi.Size() || res.Wall <= 0 || res.RowsPerSecond() <= 0 {
		t.Errorf("result %+v (stored %d), want 5,000 rows of %d bytes", res, stored, fi.Size())
	}
}

// BenchmarkImportDurable imports a synthetic CSV file of
// PRIVALYTICS_BENCH_IMPORT_ROWS rows (default 1,000,000; the figure is
// for 10,000,000) into the real event store, every batch of 100,000 rows
// fsynced before the next is acknowledged, as POST /v1/imports does; "convert"
// is the same without the store. Reproduce with
//
//	PRIVALYTICS_BENCH_IMPORT_ROWS=10000000 go test ./ingest -run XXX -bench ImportDurable -benchtime 1x
func BenchmarkImportDurable(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("PRIVALYTICS_BENCH_IMPORT_ROWS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			b.Fatalf("PRIVALYTICS_BENCH_IMPORT_ROWS=%q: want a positive number", s)
		}
	}
	dir := b.TempDir()
	path := filepath.Join(dir, "events.csv")
	writeSynthCSV(b, path, n)
	schema := privalytics.DefaultRetailSchema()
	run := func(b *testing.B, durable bool, enc events.KeyWrapper) {
		var res BenchResult
		for range b.N {
			store := func(r arrow.Record) error { r.Release(); return nil }
			var ev *events.Store
			if durable {
				// A fresh directory per run: b.Run calls run again with a
				// larger b.N, and reopening an earlier run's store would time
				// the replay of its log inside the first Append.
				sdir, err := os.MkdirTemp(dir, "store")
				if err != nil {
					b.Fatal(err)
				}
				ev, err = events.Open(sdir, events.Options{SyncWrites: true, SealRows: 10 * n, Encryption: enc})
				if err != nil {
					b.Fatal(err)
				}
				store = func(r arrow.Record) error {
					_, err := ev.Append(context.Background(), "bench", schema, privalytics.Batch{Record: r})
					return err
				}
			}
			r, err := BenchImport(context.Background(), path, "csv", testConverter(b), nil, 100_000, store)
			if err != nil || r.Rows != n {
				b.Fatal(err, r.Rows)
			}
			if ev != nil {
				ev.Close()
			}
			res.Rows += r.Rows
			res.Wall += r.Wall
			res.CPU += r.CPU
		}
		b.ReportMetric(res.RowsPerSecond(), "rows/s")
		b.ReportMetric(res.RowsPerCPUSecond(), "rows/cpu-s")
	}
	mk, _, err := keyring.LoadOrCreateMasterKey(filepath.Join(dir, "master.key"))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("durable", func(b *testing.B) { run(b, true, nil) })
	b.Run("durable-encrypted", func(b *testing.B) { run(b, true, mk) }) // as serve runs by default
	b.Run("convert", func(b *testing.B) { run(b, false, nil) })
}

// BenchmarkImportNDJSON imports 500,000 synthetic events of NDJSON text to
// Arrow records (no store) on one goroutine and on GOMAXPROCS.
//
//	go test ./ingest -run XXX -bench ImportNDJSON -benchtime 3x
func BenchmarkImportNDJSON(b *testing.B) {
	body := synthNDJSON(b, 500_000)
	for _, workers := range []int{1, 0} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			conv := testConverter(b)
			b.SetBytes(int64(len(body)))
			cpu0 := cpuTime()
			b.ResetTimer()
			for range b.N {
				rep, err := importNDJSON(context.Background(), bytes.NewReader(body), conv, nil, 100_000, func(r arrow.Record) error { r.Release(); return nil }, nil, importOptions{workers: workers})
				if err != nil || rep.Rows != 500_000 {
					b.Fatal(err, rep)
				}
			}
			reportRows(b, 500_000, cpu0)
		})
	}
}
