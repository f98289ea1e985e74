package events

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
)

func TestAppendThenRestartKeepsEveryValue(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		sealRows int
		seal     bool // force a seal between the two rounds of appends
	}{
		{"log only", 1_000_000, false},
		{"forced seal, then more appends", 1_000_000, true},
		{"background seals", 150, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := openStore(t, dir, tc.sealRows, nil)
			first, second := batches(0, 6, 37), batches(6, 9, 37)
			appendAll(t, s, 0, first)
			if tc.seal {
				if err := s.Seal(context.Background(), "t1"); err != nil {
					t.Fatal(err)
				}
			}
			appendAll(t, s, 6, second)
			want := tableOf(t, append(first, second...))
			if diff := cmp.Diff(want, snapshotTable(t, s)); diff != "" {
				t.Errorf("snapshot after appends (-want +got):\n%s", diff)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2 := openStore(t, dir, tc.sealRows, nil)
			defer s2.Close()
			if diff := cmp.Diff(want, snapshotTable(t, s2)); diff != "" {
				t.Errorf("snapshot after restart (-want +got):\n%s", diff)
			}
		})
	}
}

var bytesCut = regexp.MustCompile(`bytes_cut=(\d+)`)

func TestTornTailIsCutAndLogged(t *testing.T) {
	t.Parallel()
	const n = 5
	orig := t.TempDir()
	s := openStore(t, orig, 1_000_000, nil)
	recs := batches(0, n, 20)
	appendAll(t, s, 0, recs)
	s.Close()
	logs := walFiles(t, orig)
	if len(logs) != 1 {
		t.Fatalf("want one log file, got %v", logs)
	}
	offs, size := frameOffsets(t, logs[0])
	if len(offs) != n {
		t.Fatalf("log has %d frames, want %d", len(offs), n)
	}
	want := tableOf(t, recs[:n-1])
	rng := rand.New(rand.NewPCG(1, 2)) // fixed seed: failures reproduce
	cuts := []int64{offs[n-1] + 1, offs[n-1] + frameHeader, size - 1}
	for range 5 {
		cuts = append(cuts, offs[n-1]+1+rng.Int64N(size-offs[n-1]-1))
	}
	for _, cut := range cuts {
		t.Run(fmt.Sprintf("cut at %d of %d", cut, size), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			copyDir(t, orig, dir)
			if err := os.Truncate(filepath.Join(dir, "t1", "wal", filepath.Base(logs[0])), cut); err != nil {
				t.Fatal(err)
			}
			var lb logBuffer
			s := openStore(t, dir, 1_000_000, &lb)
			if diff := cmp.Diff(want, snapshotTable(t, s)); diff != "" {
				t.Errorf("rows after recovery (-want +got):\n%s", diff)
			}
			if m := bytesCut.FindStringSubmatch(lb.String()); m == nil || m[1] != strconv.FormatInt(cut-offs[n-1], 10) {
				t.Errorf("log says %q, want bytes_cut=%d", lb.String(), cut-offs[n-1])
			}
			more := batches(100, 102, 3)
			appendAll(t, s, 100, more)
			s.Close()
			s = openStore(t, dir, 1_000_000, nil)
			defer s.Close()
			if diff := cmp.Diff(tableOf(t, append(append([]arrow.Record{}, recs[:n-1]...), more...)), snapshotTable(t, s)); diff != "" {
				t.Errorf("rows after appending to the recovered log and restarting (-want +got):\n%s", diff)
			}
		})
	}
}

// A corrupt frame in the middle of the logs is damage, not a torn write: the
// frames and logs after it were acknowledged. Loading refuses, naming the file
// and changing nothing; repair moves the bad tail aside and keeps every later log.
func TestCorruptFrameIsRefusedThenRepaired(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStore(t, dir, 1_000_000, nil)
	recs := batches(0, 3, 20)
	appendAll(t, s, 0, recs)
	s.Close()
	// A second log file, as a restart starts one: written after the corrupt
	// frame, acknowledged, and never to be deleted for it.
	s = openStore(t, dir, 1_000_000, nil)
	later := batches(3, 4, 20)
	appendAll(t, s, 3, later)
	s.Close()
	logs := walFiles(t, dir)
	if len(logs) != 2 {
		t.Fatalf("want two log files, got %v", logs)
	}
	offs, _ := frameOffsets(t, logs[0])
	raw, err := os.ReadFile(logs[0])
	if err != nil {
		t.Fatal(err)
	}
	raw[offs[1]+frameHeader+40] ^= 0x5a // inside the middle frame's payload
	if err := os.WriteFile(logs[0], raw, 0o600); err != nil {
		t.Fatal(err)
	}
	before := treeBytes(t, dir)
	var lb logBuffer
	s = openStore(t, dir, 1_000_000, &lb)
	_, err = s.Snapshot(context.Background(), "t1", retail)
	s.Close()
	var d *Damage
	if !errors.As(err, &d) || d.File != filepath.Join("t1", "wal", "00000001.log") || !strings.Contains(d.Problem, "CRC mismatch") {
		t.Fatalf("snapshot error = %v, want a Damage naming t1/wal/00000001.log and the CRC mismatch", err)
	}
	if code := privalytics.ErrorCode(err); code != privalytics.EUNAVAILABLE {
		t.Errorf("error code %q, want %q", code, privalytics.EUNAVAILABLE)
	}
	if diff := cmp.Diff(before, treeBytes(t, dir)); diff != "" {
		t.Errorf("a refused load changed files (-before +after):\n%s", diff)
	}
	if !strings.Contains(lb.String(), "refusing to load") {
		t.Errorf("the refusal is not logged:\n%s", lb.String())
	}

	fixed, left, err := Repair(dir, Options{})
	if err != nil || len(fixed) != 1 || len(left) != 0 {
		t.Fatalf("repair: fixed %v, left %v, err %v", fixed, left, err)
	}
	q, err := os.ReadFile(filepath.Join(dir, "t1", "quarantine", fmt.Sprintf("00000001.log.from-%d", offs[1])))
	if err != nil || !bytes.Equal(q, raw[offs[1]:]) {
		t.Errorf("the cut bytes are not kept in quarantine/ (err %v)", err)
	}
	s = openStore(t, dir, 1_000_000, nil)
	defer s.Close()
	if diff := cmp.Diff(tableOf(t, append(recs[:1:1], later...)), snapshotTable(t, s)); diff != "" {
		t.Errorf("rows after repair (-want +got):\n%s", diff)
	}
}

func TestInterruptedSealRecoversWithoutDuplicates(t *testing.T) {
	t.Parallel()
	errCrash := fmt.Errorf("simulated crash")
	for _, tc := range []struct {
		name  string
		crash func(t *testing.T, dir string, s *Store)
	}{
		{"segment written, manifest not swapped", func(t *testing.T, dir string, s *Store) {
			s.crashBeforeManifest = func() error { return errCrash }
			if err := s.Seal(context.Background(), "t1"); err != errCrash {
				t.Fatalf("seal: %v, want the simulated crash", err)
			}
			os.WriteFile(filepath.Join(dir, "t1", "MANIFEST.tmp"), []byte(`{"vers`), 0o600) // half-written
		}},
		{"manifest swapped, logs not removed", func(t *testing.T, dir string, s *Store) {
			saved := t.TempDir()
			copyDir(t, filepath.Join(dir, "t1", "wal"), saved)
			if err := s.Seal(context.Background(), "t1"); err != nil {
				t.Fatal(err)
			}
			copyDir(t, saved, filepath.Join(dir, "t1", "wal"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := openStore(t, dir, 1_000_000, nil)
			recs := batches(0, 4, 25)
			appendAll(t, s, 0, recs)
			want := tableOf(t, recs)
			tc.crash(t, dir, s)
			s.Close()

			s = openStore(t, dir, 1_000_000, nil)
			if diff := cmp.Diff(want, snapshotTable(t, s)); diff != "" {
				t.Errorf("rows after the crash (-want +got):\n%s", diff)
			}
			if err := s.Seal(context.Background(), "t1"); err != nil {
				t.Fatalf("seal after recovery: %v", err)
			}
			s.Close()
			s = openStore(t, dir, 1_000_000, nil)
			defer s.Close()
			if diff := cmp.Diff(want, snapshotTable(t, s)); diff != "" {
				t.Errorf("rows after sealing again and restarting (-want +got):\n%s", diff)
			}
			segs, _ := filepath.Glob(filepath.Join(dir, "t1", "segments", "*.parquet")) // load images beside them are counted apart
			imgs, _ := filepath.Glob(filepath.Join(dir, "t1", "segments", "*"+imageSuffix))
			if len(imgs) != len(segs) {
				t.Errorf("%d load images for %d segments: %v", len(imgs), len(segs), imgs)
			}
			st, _ := s.Stats("t1")
			if st.Rows != 100 || st.Segments != len(segs) {
				t.Errorf("stats %+v with segment files %v: want 100 rows and no orphan segment", st, segs)
			}
		})
	}
}

func TestIdempotentRetries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir, 1_000_000, nil)
	first, err := s.Append(ctx, "t1", retail, privalytics.Batch{Record: testRecord(1, 10), IdempotencyKey: "till-7"})
	if diff := cmp.Diff(privalytics.AppendResult{Rows: 10}, first); diff != "" || err != nil {
		t.Fatalf("first append (-want +got):\n%s %v", diff, err)
	}
	want := tableOf(t, []arrow.Record{testRecord(1, 10)})
	retry := func(s *Store, when string) {
		t.Helper()
		res, err := s.Append(ctx, "t1", retail, privalytics.Batch{Record: testRecord(2, 3), IdempotencyKey: "till-7"})
		if diff := cmp.Diff(privalytics.AppendResult{Rows: 10, Duplicate: true}, res); diff != "" || err != nil {
			t.Errorf("%s: retry (-want +got):\n%s %v", when, diff, err)
		}
		if diff := cmp.Diff(want, snapshotTable(t, s)); diff != "" {
			t.Errorf("%s: rows (-want +got):\n%s", when, diff)
		}
	}
	retry(s, "same process")
	s.Close()
	s = openStore(t, dir, 1_000_000, nil)
	retry(s, "after restart")
	if err := s.Seal(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	retry(s, "after sealing")
	s.Close()
	s = openStore(t, dir, 1_000_000, nil)
	defer s.Close()
	retry(s, "after sealing and restart")

	// Concurrent retries of one new key: exactly one stores.
	var wg sync.WaitGroup
	results := make([]privalytics.AppendResult, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], _ = s.Append(ctx, "t1", retail, privalytics.Batch{Record: testRecord(3, 4), IdempotencyKey: "till-8"})
		}()
	}
	wg.Wait()
	fresh := 0
	for _, r := range results {
		if r.Rows != 4 {
			t.Errorf("concurrent retry got %+v, want 4 rows", r)
		}
		if !r.Duplicate {
			fresh++
		}
	}
	if fresh != 1 {
		t.Errorf("%d of 8 concurrent retries stored the batch, want 1", fresh)
	}
}

func TestIdempotencyWindowForgetsTheOldest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, Options{SyncWrites: true, IdempotencyWindow: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, key := range []string{"a", "b", "c"} {
		if _, err := s.Append(ctx, "t1", retail, privalytics.Batch{Record: testRecord(1, 1), IdempotencyKey: key}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		key       string
		duplicate bool
	}{{"c", true}, {"b", true}, {"a", false}} {
		res, err := s.Append(ctx, "t1", retail, privalytics.Batch{Record: testRecord(1, 1), IdempotencyKey: tc.key})
		if err != nil || res.Duplicate != tc.duplicate {
			t.Errorf("key %s: %+v %v, want duplicate=%v", tc.key, res, err, tc.duplicate)
		}
	}
}

func TestConcurrentAppendsStoreEveryRowOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStore(t, dir, 700, nil) // small: background seals run during the appends
	var mu sync.Mutex
	var sent []arrow.Record
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range 12 {
				rec := testRecord(w*100+b, 1+(w*b)%40)
				if _, err := s.Append(context.Background(), "t1", retail, privalytics.Batch{Record: rec, IdempotencyKey: fmt.Sprintf("w%d-%d", w, b)}); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				sent = append(sent, rec)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	want := tableOf(t, sent)
	if diff := cmp.Diff(want, snapshotTable(t, s)); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	st, _ := s.Stats("t1")
	if st.LogSyncs >= int64(len(sent)) {
		t.Logf("no group commit happened: %d fsyncs for %d appends (possible on an idle machine)", st.LogSyncs, len(sent))
	}
	s.Close()
	s = openStore(t, dir, 700, nil)
	defer s.Close()
	if diff := cmp.Diff(want, snapshotTable(t, s)); diff != "" {
		t.Errorf("rows after restart (-want +got):\n%s", diff)
	}
}

// Forced seals racing background seals and appends must neither lose nor
// duplicate a row, in memory or after a restart.
func TestConcurrentSealsKeepRowsOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStore(t, dir, 200, nil)
	var mu sync.Mutex
	var sent []arrow.Record
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range 25 {
				rec := testRecord(w*1000+b, 40)
				if _, err := s.Append(context.Background(), "t1", retail, privalytics.Batch{Record: rec}); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				sent = append(sent, rec)
				mu.Unlock()
				if b%5 == 0 {
					if err := s.Seal(context.Background(), "t1"); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	want := tableOf(t, sent)
	if diff := cmp.Diff(want, snapshotTable(t, s)); diff != "" {
		t.Errorf("rows before restart (-want +got):\n%s", diff)
	}
	s.Close()
	s = openStore(t, dir, 200, nil)
	defer s.Close()
	if diff := cmp.Diff(want, snapshotTable(t, s)); diff != "" {
		t.Errorf("rows after restart (-want +got):\n%s", diff)
	}
}

// checkDense checks that within one snapshot a subject has one number, numbers
// are below Subjects, and Subjects counts the distinct subjects.
func checkDense(t *testing.T, snap *privalytics.Snapshot) {
	t.Helper()
	num := map[uint64]uint32{}
	used := map[uint32]uint64{}
	for _, ch := range snap.Chunks {
		for i, sv := range privalytics.Uint64s(ch.Record.Column(0)) {
			n := ch.Subjects[i]
			if int(n) >= snap.Subjects {
				t.Fatalf("subject number %d ≥ Subjects %d", n, snap.Subjects)
			}
			if prev, ok := num[sv]; ok && prev != n {
				t.Fatalf("subject %x has numbers %d and %d", sv, prev, n)
			}
			if other, ok := used[n]; ok && other != sv {
				t.Fatalf("number %d given to subjects %x and %x", n, other, sv)
			}
			num[sv], used[n] = n, sv
		}
	}
	if len(num) != snap.Subjects {
		t.Errorf("%d distinct subjects, snapshot says %d", len(num), snap.Subjects)
	}
}

func TestSubjectNumbersAreDenseAndConsistent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStore(t, dir, 1_000_000, nil)
	appendAll(t, s, 0, batches(0, 3, 20))
	checkDense(t, snapshot(t, s))
	if err := s.Seal(context.Background(), "t1"); err != nil {
		t.Fatal(err)
	}
	appendAll(t, s, 3, batches(3, 200, 5)) // coalesced, and mixed with sealed chunks
	snap := snapshot(t, s)
	if len(snap.Chunks) < 2 {
		t.Fatalf("want sealed and log chunks, got %d chunks", len(snap.Chunks))
	}
	checkDense(t, snap)
	s.Close()
	s = openStore(t, dir, 1_000_000, nil)
	defer s.Close()
	checkDense(t, snapshot(t, s))
}

func TestSnapshotsDoNotChange(t *testing.T) {
	t.Parallel()
	s := openStore(t, t.TempDir(), 1_000_000, nil)
	defer s.Close()
	first := batches(0, 100, 10)
	appendAll(t, s, 0, first)
	before := snapshot(t, s)
	beforeTable := tableOf(t, records(before))
	appendAll(t, s, 100, batches(100, 300, 10)) // coalesces the newest records
	if err := s.Seal(context.Background(), "t1"); err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, s)
	if after.Version <= before.Version {
		t.Errorf("version %d after appends, was %d: want it to grow", after.Version, before.Version)
	}
	if diff := cmp.Diff(tableOf(t, first), tableOf(t, records(before))); diff != "" {
		t.Errorf("earlier snapshot changed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(beforeTable, tableOf(t, records(before))); diff != "" {
		t.Errorf("earlier snapshot changed (-want +got):\n%s", diff)
	}
	if got := after.Rows(); got != 3000 {
		t.Errorf("snapshot after appends has %d rows, want 3000", got)
	}
	again := snapshot(t, s)
	if again.Version != after.Version {
		t.Errorf("version changed from %d to %d without any append", after.Version, again.Version)
	}
}

func records(s *privalytics.Snapshot) []arrow.Record {
	out := make([]arrow.Record, len(s.Chunks))
	for i, c := range s.Chunks {
		out[i] = c.Record
	}
	return out
}

// waitCoalesced waits for background coalescing to settle (Close waits for it).
func waitCoalesced(s *Store) {
	s.workers.Wait()
}

func TestSmallAppendsAreCoalesced(t *testing.T) {
	t.Parallel()
	s := openStore(t, t.TempDir(), 1_000_000, nil)
	defer s.Close()
	recs := batches(0, 3000, 10) // 30k rows in 10-row appends
	appendAll(t, s, 0, recs)
	waitCoalesced(s)
	st, _ := s.Stats("t1")
	// 10-row records coalesce into 160, 2,560 and 40,960 rows: 30k rows leave
	// at most coalesceFanIn−1 records on each of four levels.
	if limit := 4 * (coalesceFanIn - 1); st.Chunks > limit || st.Rows != 30_000 {
		t.Errorf("stats %+v: want 30000 rows in at most %d records", st, limit)
	}
	if diff := cmp.Diff(tableOf(t, recs), snapshotTable(t, s)); diff != "" {
		t.Errorf("rows after coalescing (-want +got):\n%s", diff)
	}
	checkDense(t, snapshot(t, s))
}

func TestAppendRejectsBadInput(t *testing.T) {
	t.Parallel()
	s := openStore(t, t.TempDir(), 1_000_000, nil)
	t.Cleanup(func() { s.Close() }) // after the parallel subtests
	other := privalytics.DefaultRetailSchema()
	other.Columns = other.Columns[:3]
	for _, tc := range []struct {
		name   string
		tenant string
		schema privalytics.Schema
		batch  privalytics.Batch
		code   string
	}{
		{"no rows", "t1", retail, privalytics.Batch{Record: testRecord(0, 0)}, privalytics.EINVALID},
		{"no record", "t1", retail, privalytics.Batch{}, privalytics.EINVALID},
		{"key too long", "t1", retail, privalytics.Batch{Record: testRecord(0, 1), IdempotencyKey: strings.Repeat("k", MaxIdempotencyKey+1)}, privalytics.EINVALID},
		{"tenant id with a path", "../t1", retail, privalytics.Batch{Record: testRecord(0, 1)}, privalytics.EINVALID},
		{"tenant loaded with another schema", "t1", other, privalytics.Batch{Record: testRecord(0, 1)}, privalytics.ECONFLICT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.code == privalytics.ECONFLICT {
				appendAll(t, s, 0, batches(0, 1, 1)) // load t1 with the retail schema
			}
			_, err := s.Append(context.Background(), tc.tenant, tc.schema, tc.batch)
			if got := privalytics.ErrorCode(err); got != tc.code {
				t.Errorf("error %v has code %q, want %q", err, got, tc.code)
			}
		})
	}
}

func TestCloseIsIdempotentAndFinal(t *testing.T) {
	t.Parallel()
	s := openStore(t, t.TempDir(), 1_000_000, nil)
	appendAll(t, s, 0, batches(0, 1, 5))
	for i := range 2 {
		if err := s.Close(); err != nil {
			t.Errorf("close %d: %v", i+1, err)
		}
	}
	_, err := s.Append(context.Background(), "t1", retail, privalytics.Batch{Record: testRecord(1, 1)})
	if got := privalytics.ErrorCode(err); got != privalytics.EUNAVAILABLE {
		t.Errorf("append after close: %v (code %q), want %q", err, got, privalytics.EUNAVAILABLE)
	}
}

// The same record appended many times (a caller resending one batch under new
// keys) must coalesce like distinct ones; coalescing once spun forever on it.
func TestSameRecordAppendedManyTimes(t *testing.T) {
	t.Parallel()
	s := openStore(t, t.TempDir(), 1_000_000, nil)
	defer s.Close()
	rec := testRecord(0, 100)
	for i := range 300 {
		if _, err := s.Append(context.Background(), "t1", retail, privalytics.Batch{Record: rec, IdempotencyKey: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() { waitCoalesced(s); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("coalescing did not settle within 30 s")
	}
	st, _ := s.Stats("t1")
	if limit := 3 * (coalesceFanIn - 1); st.Rows != 30_000 || st.Chunks > limit {
		t.Errorf("stats %+v: want 30000 rows in at most %d records", st, limit)
	}
	checkDense(t, snapshot(t, s))
}
