package events

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
)

var schema = privalytics.DefaultRetailSchema()

// testRecord builds a record of n rows for the default schema. Row i of batch b
// has order_id "b<b>-<i>" so tests can tell rows apart; subjects repeat.
func testRecord(b, n int) arrow.Record {
	as := schema.Arrow()
	rb := array.NewRecordBuilder(memory.DefaultAllocator, as)
	defer rb.Release()
	for i := range n {
		for f := range as.NumFields() {
			fb := rb.Field(f)
			name := as.Field(f).Name
			switch name {
			case privalytics.SubjectColumn:
				fb.(*array.Uint64Builder).Append(uint64((b*7 + i) % 13))
			case "ts":
				fb.(*array.TimestampBuilder).Append(arrow.Timestamp(1_735_689_600_000_000 + int64(b*1000+i)*1_000_000))
			case "type":
				fb.(*array.BinaryDictionaryBuilder).AppendString([]string{"purchase", "view"}[i%2])
			case "order_id":
				fb.(*array.BinaryDictionaryBuilder).AppendString(fmt.Sprintf("b%d-%d", b, i))
			case "amount", "quantity":
				fb.(*array.Int64Builder).Append(int64(i * 1000))
			default:
				fb.AppendNull()
			}
		}
	}
	return rb.NewRecord()
}

// contents lists every stored row as "order_id/subject/amount", sorted.
func contents(t *testing.T, s *Store) []string {
	t.Helper()
	snap, err := s.Snapshot(context.Background(), "t1", schema)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ch := range snap.Chunks {
		r := ch.Record
		ord := r.Column(r.Schema().FieldIndices("order_id")[0]).(*array.Dictionary)
		od := ord.Dictionary().(*array.String)
		subj := r.Column(0).(*array.Uint64)
		amt := r.Column(r.Schema().FieldIndices("amount")[0]).(*array.Int64)
		for i := range int(r.NumRows()) {
			out = append(out, fmt.Sprintf("%s/%d/%d", od.Value(ord.GetValueIndex(i)), subj.Value(i), amt.Value(i)))
		}
		if len(ch.Subjects) != int(r.NumRows()) {
			t.Fatalf("chunk has %d subject numbers for %d rows", len(ch.Subjects), r.NumRows())
		}
	}
	sort.Strings(out)
	return out
}

func open(t *testing.T, dir string, sealRows int) *Store {
	t.Helper()
	s, err := Open(dir, Options{SealRows: sealRows, SyncWrites: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func appendN(t *testing.T, s *Store, from, to, rows int) {
	t.Helper()
	for b := from; b < to; b++ {
		if _, err := s.Append(context.Background(), "t1", schema, privalytics.Batch{Record: testRecord(b, rows), IdempotencyKey: fmt.Sprintf("k%d", b)}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRestartKeepsRows(t *testing.T) {
	t.Parallel()
	for _, seal := range []bool{false, true} {
		t.Run(fmt.Sprintf("sealed=%v", seal), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := open(t, dir, 1_000_000)
			appendN(t, s, 0, 5, 10)
			if seal {
				if err := s.Seal(context.Background(), "t1"); err != nil {
					t.Fatal(err)
				}
				appendN(t, s, 5, 7, 10)
			}
			want := contents(t, s)
			if len(want) == 0 {
				t.Fatal("no rows stored")
			}
			s.Close()
			s2 := open(t, dir, 1_000_000)
			defer s2.Close()
			if diff := cmp.Diff(want, contents(t, s2)); diff != "" {
				t.Errorf("rows after restart (-before +after):\n%s", diff)
			}
		})
	}
}

func TestTornTailIsCut(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, dir, 1_000_000)
	appendN(t, s, 0, 3, 10)
	want := contents(t, s)
	appendN(t, s, 3, 4, 10) // the batch that will be torn
	s.Close()
	logs, _ := filepath.Glob(filepath.Join(dir, "t1", "wal", "*.log"))
	if len(logs) != 1 {
		t.Fatalf("want one log file, got %v", logs)
	}
	fi, _ := os.Stat(logs[0])
	frames, good, err := readLog(logs[0])
	if err != nil || len(frames) != 4 || good != fi.Size() {
		t.Fatalf("log before tearing: %d frames, good %d of %d, %v", len(frames), good, fi.Size(), err)
	}
	_, lastStart, _ := readLogPrefix(t, logs[0], 3)
	for _, cut := range []int64{lastStart + 1, lastStart + 7, (lastStart + fi.Size()) / 2, fi.Size() - 1} {
		raw, _ := os.ReadFile(logs[0])
		torn := t.TempDir()
		copyTenant(t, dir, torn)
		os.WriteFile(filepath.Join(torn, "t1", "wal", filepath.Base(logs[0])), raw[:cut], 0o600)
		s2 := open(t, torn, 1_000_000)
		if diff := cmp.Diff(want, contents(t, s2)); diff != "" {
			t.Errorf("cut at %d: rows (-want +got):\n%s", cut, diff)
		}
		appendN(t, s2, 10, 11, 5) // appends work after recovery
		if got := len(contents(t, s2)); got != len(want)+5 {
			t.Errorf("cut at %d: %d rows after a new append, want %d", cut, got, len(want)+5)
		}
		s2.Close()
	}
}

// readLogPrefix returns the offset after n frames.
func readLogPrefix(t *testing.T, path string, n int) ([]frame, int64, error) {
	t.Helper()
	raw, _ := os.ReadFile(path)
	tmp := filepath.Join(t.TempDir(), "x.log")
	for size := int64(1); size <= int64(len(raw)); size++ {
		os.WriteFile(tmp, raw[:size], 0o600)
		frames, good, err := readLog(tmp)
		if len(frames) == n && good == size {
			return frames, good, err
		}
	}
	t.Fatalf("no prefix with %d frames", n)
	return nil, 0, nil
}

func copyTenant(t *testing.T, from, to string) {
	t.Helper()
	filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		rel, _ := filepath.Rel(from, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		raw, _ := os.ReadFile(p)
		return os.WriteFile(filepath.Join(to, rel), raw, 0o600)
	})
}

func TestCorruptMiddleFrameCutsTheRest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, dir, 1_000_000)
	appendN(t, s, 0, 1, 10)
	want := contents(t, s)
	appendN(t, s, 1, 3, 10)
	s.Close()
	logs, _ := filepath.Glob(filepath.Join(dir, "t1", "wal", "*.log"))
	_, second, _ := readLogPrefix(t, logs[0], 1)
	raw, _ := os.ReadFile(logs[0])
	raw[second+frameHeader+20] ^= 0xff // inside the second frame's payload
	os.WriteFile(logs[0], raw, 0o600)
	s2 := open(t, dir, 1_000_000)
	defer s2.Close()
	if diff := cmp.Diff(want, contents(t, s2)); diff != "" {
		t.Errorf("after corrupting frame 2 of 3 (-want +got):\n%s", diff)
	}
}

func TestInterruptedSealRecovers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, dir, 1_000_000)
	appendN(t, s, 0, 4, 10)
	want := contents(t, s)
	s.Close()
	// A seal that wrote its segment but crashed before the manifest named it, and
	// left a half-written temp manifest.
	os.WriteFile(filepath.Join(dir, "t1", "segments", "00000001.parquet"), []byte("PAR1 half"), 0o600)
	os.WriteFile(filepath.Join(dir, "t1", "MANIFEST.tmp"), []byte("{\"ver"), 0o600)
	s2 := open(t, dir, 1_000_000)
	if diff := cmp.Diff(want, contents(t, s2)); diff != "" {
		t.Errorf("after an interrupted seal (-want +got):\n%s", diff)
	}
	if err := s2.Seal(context.Background(), "t1"); err != nil {
		t.Fatalf("seal after recovery: %v", err)
	}
	s2.Close()
	s3 := open(t, dir, 1_000_000)
	defer s3.Close()
	if diff := cmp.Diff(want, contents(t, s3)); diff != "" {
		t.Errorf("after sealing and restarting (-want +got):\n%s", diff)
	}
	st, _ := s3.Stats("t1")
	if st.Segments != 1 || st.Rows != 40 {
		t.Errorf("stats %+v, want 1 segment of 40 rows", st)
	}
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, dir, 1_000_000)
	ctx := context.Background()
	first, err := s.Append(ctx, "t1", schema, privalytics.Batch{Record: testRecord(1, 10), IdempotencyKey: "same"})
	if err != nil || first.Duplicate || first.Rows != 10 {
		t.Fatalf("first append: %+v %v", first, err)
	}
	check := func(s *Store, when string) {
		res, err := s.Append(ctx, "t1", schema, privalytics.Batch{Record: testRecord(2, 3), IdempotencyKey: "same"})
		if err != nil || !res.Duplicate || res.Rows != 10 {
			t.Errorf("%s: retry got %+v %v, want duplicate of 10 rows", when, res, err)
		}
		if n := len(contents(t, s)); n != 10 {
			t.Errorf("%s: %d rows stored, want 10", when, n)
		}
	}
	check(s, "same process")
	s.Close()
	s = open(t, dir, 1_000_000)
	check(s, "after restart")
	if err := s.Seal(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dir, 1_000_000)
	defer s.Close()
	check(s, "after sealing and restart")
}

func TestConcurrentAppends(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir(), 500) // small seal threshold: sealing runs during the appends
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range 10 {
				if _, err := s.Append(context.Background(), "t1", schema, privalytics.Batch{Record: testRecord(w*100+b, 1+rand.IntN(50)), IdempotencyKey: fmt.Sprintf("w%d-%d", w, b)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	rows := contents(t, s)
	seen := map[string]bool{}
	for _, r := range rows {
		if seen[r] {
			t.Fatalf("row %s stored twice", r)
		}
		seen[r] = true
	}
	s.Close()
	if len(rows) < 16*10 {
		t.Errorf("only %d rows stored", len(rows))
	}
}

// TestConcurrentSealsKeepRowsOnce: forced seals racing background seals and
// appends must neither lose nor duplicate a row, in memory or after a restart.
func TestConcurrentSealsKeepRowsOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, dir, 200)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range 25 {
				if _, err := s.Append(context.Background(), "t1", schema, privalytics.Batch{Record: testRecord(w*1000+b, 40)}); err != nil {
					t.Error(err)
				}
				if b%5 == 0 {
					if err := s.Seal(context.Background(), "t1"); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	check := func(s *Store, when string) {
		rows := contents(t, s)
		if len(rows) != 4*25*40 {
			t.Errorf("%s: %d rows, want %d", when, len(rows), 4*25*40)
		}
		for i := 1; i < len(rows); i++ {
			if rows[i] == rows[i-1] {
				t.Fatalf("%s: row %s stored twice", when, rows[i])
			}
		}
	}
	check(s, "before restart")
	s.Close()
	s2 := open(t, dir, 200)
	defer s2.Close()
	check(s2, "after restart")
}

func TestSubjectsAreDense(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir(), 1_000_000)
	defer s.Close()
	appendN(t, s, 0, 3, 20)
	snap, _ := s.Snapshot(context.Background(), "t1", schema)
	num := map[uint64]uint32{}
	for _, ch := range snap.Chunks {
		subj := ch.Record.Column(0).(*array.Uint64).Uint64Values()
		for i, sv := range subj {
			n := ch.Subjects[i]
			if int(n) >= snap.Subjects {
				t.Fatalf("subject number %d ≥ %d", n, snap.Subjects)
			}
			if prev, ok := num[sv]; ok && prev != n {
				t.Fatalf("subject %d has numbers %d and %d", sv, prev, n)
			}
			num[sv] = n
		}
	}
	if len(num) != snap.Subjects {
		t.Errorf("%d distinct subjects, snapshot says %d", len(num), snap.Subjects)
	}
}
