package events

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/privalytics/privalytics"
)

// BenchmarkAppend measures durable ingest: every Append is fsynced before it
// returns (SyncWrites=true), with 1 or 8 writers sharing fsyncs by group commit,
// and background sealing at the default 1M rows; plaintext and encrypted at
// rest (AES-256-GCM frames). Reproduce with
//
//	go test -run '^$' -bench BenchmarkAppend -benchtime=3s ./store/events/
func BenchmarkAppend(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	zipf := rand.NewZipf(rng, 1.1, 1, 99_999)
	for _, batch := range []int{1_000, 10_000} {
		recs := make([]arrow.Record, 8)
		for i := range recs {
			recs[i] = synthRecord(rng, zipf, batch)
		}
		for _, run := range []struct {
			writers int
			enc     bool
		}{{1, false}, {1, true}, {8, false}, {8, true}} {
			writers := run.writers
			b.Run(fmt.Sprintf("batch=%d/writers=%d/encrypted=%v", batch, writers, run.enc), func(b *testing.B) {
				opt := Options{SyncWrites: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
				if run.enc {
					opt.Encryption = testMasterKey(b)
				}
				s, err := Open(b.TempDir(), opt)
				if err != nil {
					b.Fatal(err)
				}
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				for w := range writers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
							if _, err := s.Append(context.Background(), "t1", retail, privalytics.Batch{Record: recs[w]}); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				elapsed := time.Since(start).Seconds()
				b.StopTimer()
				st, _ := s.Stats("t1")
				b.ReportMetric(float64(b.N*batch)/elapsed, "rows/s")
				b.ReportMetric(float64(st.LogSyncs)/elapsed, "fsyncs/s")
				b.ReportMetric(float64(b.N)/float64(st.LogSyncs), "appends/fsync")
				s.Close()
			})
		}
	}
}

// BenchmarkSealMillion appends 1M synthetic rows (~100k subjects, 20 categories,
// 50 stores, log-normal amounts) in 10k-row batches, seals them, and reopens the
// store, reporting bytes per row on disk and in memory and the rates of sealing
// and recovery, plaintext and encrypted at rest. Appends skip fsync here: this
// measures the segment, not the log.
//
//	go test -run '^$' -bench BenchmarkSealMillion -benchtime=1x ./store/events/
func BenchmarkSealMillion(b *testing.B) {
	for _, enc := range []bool{false, true} {
		b.Run(fmt.Sprintf("encrypted=%v", enc), func(b *testing.B) { benchSealMillion(b, enc) })
	}
}

func benchSealMillion(b *testing.B, enc bool) {
	const rows, batch = 1_000_000, 10_000
	rng := rand.New(rand.NewPCG(2, 2))
	zipf := rand.NewZipf(rng, 1.1, 1, 99_999)
	recs := make([]arrow.Record, rows/batch)
	for i := range recs {
		recs[i] = synthRecord(rng, zipf, batch)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for range b.N {
		dir := b.TempDir()
		var wrap KeyWrapper
		if enc {
			wrap = testMasterKey(b)
		}
		s, err := Open(dir, Options{SyncWrites: false, SealRows: 10 * rows, Logger: logger, Encryption: wrap})
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range recs {
			if _, err := s.Append(context.Background(), "t1", retail, privalytics.Batch{Record: r}); err != nil {
				b.Fatal(err)
			}
		}
		waitCoalesced(s)
		logged, _ := s.Stats("t1")
		start := time.Now()
		if err := s.Seal(context.Background(), "t1"); err != nil {
			b.Fatal(err)
		}
		sealSecs := time.Since(start).Seconds()
		sealed, _ := s.Stats("t1")
		s.Close()

		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		start = time.Now()
		s, err = Open(dir, Options{SyncWrites: true, Logger: logger, Encryption: wrap})
		if err != nil {
			b.Fatal(err)
		}
		snap, err := s.Snapshot(context.Background(), "t1", retail)
		if err != nil || snap.Rows() != rows {
			b.Fatalf("reopened store has %d rows (%v), want %d", snap.Rows(), err, rows)
		}
		loadSecs := time.Since(start).Seconds()
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		loaded, _ := s.Stats("t1")
		runtime.KeepAlive(snap)
		s.Close()

		b.ReportMetric(float64(logged.LogBytes)/rows, "log_B/row")
		b.ReportMetric(float64(logged.MemoryBytes)/rows, "mem_B/row_before_seal")
		b.ReportMetric(float64(sealed.SegmentBytes)/rows, "disk_B/row")
		b.ReportMetric(float64(loaded.MemoryBytes)/rows, "mem_B/row")
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/rows, "heap_B/row")
		b.ReportMetric(rows/sealSecs, "seal_rows/s")
		b.ReportMetric(rows/loadSecs, "load_rows/s")
		b.ReportMetric(float64(loaded.Subjects), "subjects")
	}
}

// BenchmarkEncryptionCost isolates what encryption at rest adds per row, away
// from fsync and disk noise: encoding a 10k-row log frame with and without
// sealing it, decoding it with and without opening it, and sealing and opening
// a Parquet segment of 100k rows.
//
//	go test -run '^$' -bench BenchmarkEncryptionCost -benchtime=2s ./store/events/
func BenchmarkEncryptionCost(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 3))
	zipf := rand.NewZipf(rng, 1.1, 1, 99_999)
	rec := synthRecord(rng, zipf, 10_000)
	k := fuzzKeys(b)
	plain, err := encodeFrame(nil, "", rec)
	if err != nil {
		b.Fatal(err)
	}
	sealed, err := k.sealFrame(plain)
	if err != nil {
		b.Fatal(err)
	}
	perRow := func(b *testing.B, rows int) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
	}
	b.Run("frame/encode", func(b *testing.B) {
		for range b.N {
			if _, err := encodeFrame(nil, "", rec); err != nil {
				b.Fatal(err)
			}
		}
		perRow(b, 10_000)
	})
	b.Run("frame/encode+seal", func(b *testing.B) {
		for range b.N {
			f, err := encodeFrame(nil, "", rec)
			if err == nil {
				_, err = k.sealFrame(f)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		perRow(b, 10_000)
	})
	b.Run("frame/seal-only", func(b *testing.B) {
		for range b.N {
			if _, err := k.sealFrame(plain); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(int64(len(plain)))
		perRow(b, 10_000)
	})
	b.Run("frame/decode", func(b *testing.B) {
		for range b.N {
			if _, _, _, err := parseLog(plain, nil); err != nil {
				b.Fatal(err)
			}
		}
		perRow(b, 10_000)
	})
	b.Run("frame/open+decode", func(b *testing.B) {
		for range b.N {
			if _, _, _, err := parseLog(sealed, k); err != nil {
				b.Fatal(err)
			}
		}
		perRow(b, 10_000)
	})
	recs := make([]arrow.Record, 10)
	for i := range recs {
		recs[i] = synthRecord(rng, zipf, 10_000)
	}
	recs = []arrow.Record{concatRecords(retail.Arrow(), recs)} // as a seal lays them out
	for _, enc := range []bool{false, true} {
		var keys *tenantKeys
		if enc {
			keys = k
		}
		dir := b.TempDir()
		size, sum, err := writeSegment(dir+"/0.parquet", retail.Arrow(), recs, keys)
		if err != nil {
			b.Fatal(err)
		}
		seg := segment{File: "0.parquet", Rows: 100_000, Bytes: size, CRC: sum}
		b.Run(fmt.Sprintf("segment/write/encrypted=%v", enc), func(b *testing.B) {
			for range b.N {
				path := dir + "/w.parquet"
				os.Remove(path)
				if _, _, err := writeSegment(path, retail.Arrow(), recs, keys); err != nil {
					b.Fatal(err)
				}
			}
			perRow(b, 100_000)
		})
		b.Run(fmt.Sprintf("segment/read/encrypted=%v", enc), func(b *testing.B) {
			for range b.N {
				if _, err := readSegment(dir+"/0.parquet", seg, retail.Arrow(), keys, segmentRows); err != nil {
					b.Fatal(err)
				}
			}
			perRow(b, 100_000)
		})
	}
}

// BenchmarkRestartLoad seals 2M synthetic rows into four segments, then times
// loading them again (MeasureLoad), the wait of a first query after a restart;
// segments decode in parallel, one per core. from=image reads the segments'
// load images, from=parquet the same files with the images removed; with
// encryption at rest off and on (the server's default).
//
//	go test -run '^$' -bench BenchmarkRestartLoad -benchtime=1x ./store/events/
func BenchmarkRestartLoad(b *testing.B) {
	const rows, batch, seal = 2_000_000, 10_000, 500_000
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, enc := range []bool{false, true} {
		opt := Options{Logger: logger}
		if enc {
			opt.Encryption = testMasterKey(b)
		}
		rng := rand.New(rand.NewPCG(3, 3))
		zipf := rand.NewZipf(rng, 1.1, 1, 99_999)
		dir := b.TempDir()
		wopt := opt
		wopt.SealRows = 1 << 30
		s, err := Open(dir, wopt)
		if err != nil {
			b.Fatal(err)
		}
		for i := range rows / batch {
			if _, err := s.Append(context.Background(), "t1", retail, privalytics.Batch{Record: synthRecord(rng, zipf, batch)}); err != nil {
				b.Fatal(err)
			}
			if (i+1)*batch%seal == 0 {
				if err := s.Seal(context.Background(), "t1"); err != nil {
					b.Fatal(err)
				}
			}
		}
		s.Close()
		for _, from := range []string{"image", "parquet"} {
			b.Run(fmt.Sprintf("encrypted=%v/from=%s", enc, from), func(b *testing.B) {
				for range b.N {
					if from == "parquet" {
						imgs, _ := filepath.Glob(filepath.Join(dir, "t1", "segments", "*"+imageSuffix))
						for _, p := range imgs {
							os.Remove(p) // rewritten by the load, after it is timed
						}
					}
					f, err := MeasureLoad(context.Background(), dir, opt, "t1", retail)
					if err != nil || f.Rows != rows {
						b.Fatalf("loaded %d rows (%v), want %d", f.Rows, err, rows)
					}
					if want := map[string]int{"image": rows / seal, "parquet": 0}[from]; f.FromImages != want {
						b.Fatalf("%d segments loaded from images, want %d", f.FromImages, want)
					}
					b.ReportMetric(f.RowsPerSec, "rows/s")
					b.ReportMetric(f.Seconds, "s/load")
					b.ReportMetric(f.RowsPerCPUSec, "rows/cpu-s")
					b.ReportMetric(float64(f.Segments), "segments")
					b.ReportMetric(float64(f.ImageBytes)/float64(rows), "image-B/row")
					b.ReportMetric(float64(f.SegmentBytes)/float64(rows), "parquet-B/row")
					b.ReportMetric(float64(f.MemoryBytes)/float64(rows), "mem-B/row")
				}
			})
		}
	}
}
