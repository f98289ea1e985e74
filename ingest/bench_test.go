package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/privalytics/privalytics/synth"
)

// The benchmarks report rows/s (wall clock) and rows/cpu-s (rows per second of
// CPU used by the whole process, all goroutines and GC included): on a shared
// machine the second is the steadier figure. Reproduce with
//
//	go test ./ingest -run XXX -bench . -benchtime 3s -count 3
//
// The workload is synth's: Zipf-like customers, ≈ 150 bytes per NDJSON line.

func synthEvents(b testing.TB, n int) synth.Config {
	cfg := synth.DefaultConfig()
	cfg.Events = n
	return cfg
}

func synthNDJSON(b testing.TB, n int) []byte {
	g, err := synth.New(synthEvents(b, n))
	if err != nil {
		b.Fatal(err)
	}
	var ev synth.Event
	var buf []byte
	for g.Next(&ev) {
		buf = synth.AppendNDJSON(buf, &ev)
	}
	return buf
}

func reportRows(b *testing.B, rowsPerOp int, cpu0 time.Duration) {
	rows := float64(b.N * rowsPerOp)
	b.ReportMetric(rows/b.Elapsed().Seconds(), "rows/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(rows/cpu.Seconds(), "rows/cpu-s")
	}
}

// BenchmarkDecodeJSON decodes one full batch (100,000 events, the default
// Limits.MaxRows) of NDJSON into a record: scan, validate, pseudonymise, Arrow.
// The encoding_json case is the reference: encoding/json into a struct per line,
// with no validation or Arrow at all.
func BenchmarkDecodeJSON(b *testing.B) {
	const rows = 100_000
	body := synthNDJSON(b, rows)
	b.Run("scanner", func(b *testing.B) {
		conv := testConverter(b)
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		cpu0 := cpuTime()
		b.ResetTimer()
		for range b.N {
			rec, err := conv.DecodeJSON(body)
			if err != nil || rec.NumRows() != rows {
				b.Fatal(err)
			}
		}
		reportRows(b, rows, cpu0)
	})
	b.Run("encoding_json", func(b *testing.B) {
		type event struct {
			CustomerID, TS, Type, Store, Channel, Category, Product, OrderID, Country string
			Quantity                                                                  int64
			Amount                                                                    json.Number
		}
		b.SetBytes(int64(len(body)))
		cpu0 := cpuTime()
		b.ResetTimer()
		for range b.N {
			var ev event
			for line := range bytes.Lines(body) {
				if err := json.Unmarshal(line, &ev); err != nil {
					b.Fatal(err)
				}
			}
		}
		reportRows(b, rows, cpu0)
	})
}

// BenchmarkImportCSV measures file import without the network or the store: CSV
// text to Arrow records of 100,000 rows, validated and pseudonymised, on all
// GOMAXPROCS cores. "uci" is the real UCI Online Retail file, gzipped, through
// UCIOnlineRetailMapping (skipped when ../shared/data is absent).
func BenchmarkImportCSV(b *testing.B) {
	cfg := synthEvents(b, 500_000)
	buf := synthCSVFile(b, cfg.Events, cfg.Seed)
	// "synth" on every core; "synth-1" on one goroutine, whose ns/row is the
	// figure to compare between changes on a shared machine.
	for _, workers := range []int{0, 1} {
		name := "synth"
		if workers == 1 {
			name = "synth-1"
		}
		b.Run(name, func(b *testing.B) {
			conv := testConverter(b)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			for range b.N {
				rep, err := importCSV(context.Background(), bytes.NewReader(buf), conv, nil, 100_000, func(r arrow.Record) error { r.Release(); return nil }, nil, importOptions{workers: workers})
				if err != nil || rep.Rows != cfg.Events {
					b.Fatal(err, rep)
				}
			}
			reportRows(b, cfg.Events, cpu0)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*cfg.Events), "ns/row")
		})
	}
	b.Run("uci", func(b *testing.B) {
		path := filepath.Join(repoRoot(b), "..", "shared", "data", "online_retail_uci.csv.gz")
		gz, err := os.ReadFile(path)
		if err != nil {
			b.Skipf("SKIPPED: needs %s (present in CI, absent in a fresh clone): %v", path, err)
		}
		conv := testConverter(b)
		m := UCIOnlineRetailMapping()
		b.SetBytes(int64(len(gz)))
		cpu0 := cpuTime()
		b.ResetTimer()
		for range b.N {
			rep, err := ImportCSV(context.Background(), bytes.NewReader(gz), conv, &m, 100_000, func(arrow.Record) error { return nil }, nil)
			if err != nil || rep.Rows+rep.Skipped != 541909 {
				b.Fatal(err, rep)
			}
		}
		reportRows(b, 541909, cpu0)
	})
}
