package events

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/privalytics/privalytics"
)

// A backup taken while a tenant ingests, seals and erases is what a crash
// would leave: it loads without refusal, and holds a prefix of the batches
// (every batch before one it holds), each exactly once.
func TestBackupWhileWritingIsConsistent(t *testing.T) {
	t.Parallel()
	for _, enc := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypted=%v", enc), func(t *testing.T) {
			dir := t.TempDir()
			opt := Options{SealRows: 400, SyncWrites: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			if enc {
				opt.Encryption = testMasterKey(t)
			}
			s, err := Open(dir, opt)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			var acked atomic.Int64
			stop := make(chan struct{})
			done := make(chan error, 1)
			go func() {
				for b := 0; ; b++ {
					select {
					case <-stop:
						done <- nil
						return
					default:
					}
					if _, err := s.Append(ctx, "t1", retail, privalytics.Batch{Record: testRecord(b, 20)}); err != nil {
						done <- err
						return
					}
					acked.Store(int64(b + 1))
				}
			}()
			waitFor := func(n int64) {
				for acked.Load() < n {
					time.Sleep(time.Millisecond)
				}
			}
			waitFor(50)
			var backups []string
			var befores []int // batches acknowledged before each backup started
			for i := range 3 {
				dest := filepath.Join(t.TempDir(), fmt.Sprintf("b%d", i))
				before := acked.Load()
				rep, err := Backup(dir, dest)
				if err != nil {
					t.Fatalf("backup %d: %v", i, err)
				}
				t.Logf("backup %d: %d files, %d bytes, %d retries, %d batches acknowledged before it", i, rep.Files, rep.Bytes, rep.Retries, before)
				backups = append(backups, dest)
				befores = append(befores, int(before))
				waitFor(before + 30)
			}
			close(stop)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			s.Close()
			for i, b := range backups {
				if ds, err := Fsck(b, opt); err != nil || len(ds) > 0 {
					t.Fatalf("backup %d: fsck %v (err %v)", i, ds, err)
				}
				r, err := Open(b, opt)
				if err != nil {
					t.Fatal(err)
				}
				snap, err := r.Snapshot(ctx, "t1", retail)
				r.Close()
				if err != nil {
					t.Fatalf("backup %d: %v", i, err)
				}
				seen := map[string]int{}
				for _, c := range snap.Chunks {
					rec := privalytics.WidenRecord(c.Record, retail.Arrow())
					col := rec.Column(retail.Arrow().FieldIndices("order_id")[0]).(*array.Dictionary)
					dict := col.Dictionary().(*array.String)
					for j := range col.Len() {
						seen[dict.Value(col.GetValueIndex(j))]++
					}
				}
				n := len(seen) / 20
				if n < befores[i] || len(seen) != n*20 {
					t.Fatalf("backup %d holds %d rows, want whole batches and at least the %d acknowledged before it started", i, len(seen), befores[i])
				}
				for b := range n {
					for j := range 20 {
						if c := seen[fmt.Sprintf("b%d-%d", b, j)]; c != 1 {
							t.Fatalf("backup %d: row b%d-%d there %d times, but it holds %d batches", i, b, j, c, n)
						}
					}
				}
			}
		})
	}
}
