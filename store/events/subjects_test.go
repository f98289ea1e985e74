package events

import (
	"bytes"
	"context"
	"encoding/binary"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
)

// victim is the subject of rows i with (b*7+i)%13 == 3 in testRecord.
var victim = func() uint64 { k := uint64(3); return k * 0x9E3779B97F4A7C15 }()

// without returns tab minus the rows drop selects, and the order_ids dropped.
func without(tab table, drop func(row int) bool) (table, []string) {
	out := table{}
	var gone []string
	for name, col := range tab {
		var kept []any
		for i, v := range col {
			if drop(i) {
				if name == "order_id" {
					gone = append(gone, v.(string))
				}
				continue
			}
			kept = append(kept, v)
		}
		out[name] = kept
	}
	return out, gone
}

// unambiguous keeps the erased order IDs that are not a prefix of another
// order ID ("b0-3" of "b0-31"): a load image holds a dictionary's strings back
// to back, uncompressed, so such a needle would match a row that stays.
func unambiguous(gone []string, all []any) []string {
	erased := map[string]bool{}
	for _, id := range gone {
		erased[id] = true
	}
	var out []string
	for _, id := range gone {
		ok := true
		for _, v := range all {
			if o := v.(string); o != id && !erased[o] && strings.HasPrefix(o, id) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, id)
		}
	}
	return out
}

// subjectNeedles are the byte strings that would betray a subject in a file:
// its 8 bytes in both byte orders and its decimal and hex text.
func subjectNeedles(subj uint64) [][]byte {
	le := binary.LittleEndian.AppendUint64(nil, subj)
	be := binary.BigEndian.AppendUint64(nil, subj)
	return [][]byte{le, be, []byte(strconv.FormatUint(subj, 10)), []byte(strconv.FormatUint(subj, 16))}
}

// filesHolding lists the files under dir that contain any needle.
func filesHolding(t *testing.T, dir string, needles [][]byte) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(raw, n) {
				hits = append(hits, path+" holds "+strconv.Quote(string(n)))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

func TestEraseHidesAtOnceAndCompactionRemovesFromDisk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir, 1_000_000, nil)
	s.manualCompaction = true
	first, second := batches(0, 4, 40), batches(4, 7, 40)
	appendAll(t, s, 0, first)
	if err := s.Seal(ctx, "t1"); err != nil { // some rows in a segment, some in the log
		t.Fatal(err)
	}
	appendAll(t, s, 4, second)
	all := tableOf(t, append(first, second...))
	subj := all[privalytics.SubjectColumn]
	want, gone := without(all, func(i int) bool { return subj[i].(uint64) == victim })
	if len(gone) == 0 {
		t.Fatal("the test data holds no rows of the victim")
	}
	wantVictim, _ := without(all, func(i int) bool { return subj[i].(uint64) != victim })
	got, err := s.SubjectEvents(ctx, "t1", retail, victim)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantVictim, tableOf(t, []arrow.Record{got})); diff != "" {
		t.Errorf("subject events (-want +got):\n%s", diff)
	}
	needles := subjectNeedles(victim)
	for _, id := range unambiguous(gone, all["order_id"]) {
		needles = append(needles, []byte(id))
	}
	if hits := filesHolding(t, dir, needles); len(hits) == 0 {
		t.Fatal("before erasure no file holds the victim's bytes, so the check after it proves nothing")
	}

	before := snapshot(t, s).Version
	rc, err := s.Erase(ctx, "t1", retail, []uint64{victim, victim, 12345})
	if err != nil {
		t.Fatal(err)
	}
	if rc.Status != privalytics.ErasurePending || rc.Rows != len(gone) || rc.Subjects != 2 {
		t.Errorf("receipt = %+v, want pending, %d rows, 2 subjects", rc, len(gone))
	}
	snap := snapshot(t, s)
	if snap.Version == before {
		t.Error("erasure kept the snapshot version, so cached answers would still be served")
	}
	if diff := cmp.Diff(want, snapshotTable(t, s)); diff != "" {
		t.Errorf("snapshot right after erasure (-want +got):\n%s", diff)
	}

	// A restart before compaction still hides the rows: the tombstone is durable.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, 1_000_000, nil)
	s.manualCompaction = true
	if diff := cmp.Diff(want, snapshotTable(t, s)); diff != "" {
		t.Errorf("snapshot after a restart before compaction (-want +got):\n%s", diff)
	}
	// A customer who comes back after erasure is stored again.
	back := testRecord(100, 13)
	appendAll(t, s, 100, []arrow.Record{back})

	if err := s.Compact(ctx, "t1", retail); err != nil {
		t.Fatal(err)
	}
	r2, err := s.Receipt(ctx, "t1", retail, rc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Status != privalytics.ErasureComplete || r2.CompletedAt == nil || r2.CompletedAt.Before(rc.RequestedAt) {
		t.Errorf("receipt after compaction = %+v, want complete with a completion time", r2)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The victim's new rows are stored (and so on disk); check the old ones only.
	if hits := filesHolding(t, dir, needles[4:]); len(hits) > 0 {
		t.Errorf("after compaction the erased rows' values remain:\n%v", hits)
	}
	s = openStore(t, dir, 1_000_000, nil)
	defer s.Close()
	want2 := tableOf(t, append(append(append([]arrow.Record(nil), first...), second...), back))
	subj2 := want2[privalytics.SubjectColumn]
	order2 := want2["order_id"]
	want2, _ = without(want2, func(i int) bool {
		return subj2[i].(uint64) == victim && order2[i].(string)[:4] != "b100"
	})
	if diff := cmp.Diff(want2, snapshotTable(t, s)); diff != "" {
		t.Errorf("snapshot after compaction and restart (-want +got):\n%s", diff)
	}
}

func TestErasedSubjectLeavesNoByteOnDisk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir, 100, nil) // background seals: several segments
	recs := batches(0, 8, 30)
	appendAll(t, s, 0, recs)
	if hits := filesHolding(t, dir, subjectNeedles(victim)); len(hits) == 0 {
		t.Fatal("before erasure no file holds the subject's bytes, so the check after it proves nothing")
	}
	if _, err := s.Erase(ctx, "t1", retail, []uint64{victim}); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(ctx, "t1", retail); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if hits := filesHolding(t, dir, subjectNeedles(victim)); len(hits) > 0 {
		t.Errorf("after erasure and compaction the subject remains:\n%v", hits)
	}
}

func TestPurgeHidesOldRowsAndCompactsThem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir, 1_000_000, nil)
	s.manualCompaction = true
	recs := batches(0, 6, 20)
	appendAll(t, s, 0, recs[:3])
	if err := s.Seal(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	appendAll(t, s, 3, recs[3:])
	all := tableOf(t, recs)
	cut := time.UnixMicro(1_735_689_600_000_000 + 2500*1_000_000) // after every row of batches 0 to 2
	ts := all["ts"]
	want, gone := without(all, func(i int) bool { return ts[i].(int64) < cut.UnixMicro() })
	rc, err := s.Purge(ctx, "t1", retail, cut)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Rows != len(gone) || len(gone) != 60 {
		t.Errorf("purge hid %d rows, want %d (60)", rc.Rows, len(gone))
	}
	if diff := cmp.Diff(want, snapshotTable(t, s)); diff != "" {
		t.Errorf("snapshot after purge (-want +got):\n%s", diff)
	}
	if err := s.Compact(ctx, "t1", retail); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, 1_000_000, nil)
	defer s.Close()
	if diff := cmp.Diff(want, snapshotTable(t, s)); diff != "" {
		t.Errorf("snapshot after compaction and restart (-want +got):\n%s", diff)
	}
	st, _ := s.Stats("t1")
	if st.Rows != len(want["ts"]) {
		t.Errorf("stats count %d rows, want %d", st.Rows, len(want["ts"]))
	}
}

func TestRectifyRewritesTheSubjectsRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, t.TempDir(), 1_000_000, nil)
	defer s.Close()
	recs := batches(0, 4, 30)
	appendAll(t, s, 0, recs)
	before, err := s.SubjectEvents(ctx, "t1", retail, victim)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := s.Rectify(ctx, "t1", retail, victim, map[string]any{"country": "FR", "quantity": int64(9)})
	if err != nil {
		t.Fatal(err)
	}
	if rc.Rows != int(before.NumRows()) {
		t.Errorf("rectified %d rows, want %d", rc.Rows, before.NumRows())
	}
	after, err := s.SubjectEvents(ctx, "t1", retail, victim)
	if err != nil {
		t.Fatal(err)
	}
	want := tableOf(t, []arrow.Record{before})
	for i := range want["country"] {
		want["country"][i] = "FR"
		want["quantity"][i] = int64(9)
	}
	if diff := cmp.Diff(want, tableOf(t, []arrow.Record{after})); diff != "" {
		t.Errorf("rows after rectification (-want +got):\n%s", diff)
	}
	if got := snapshot(t, s).Rows(); got != 120 {
		t.Errorf("the tenant holds %d rows after rectification, want 120", got)
	}
	for _, bad := range []map[string]any{{"nope": "x"}, {"ts": int64(1)}, {"quantity": "x"}, {"type": nil}} {
		if _, err := s.Rectify(ctx, "t1", retail, victim, bad); privalytics.ErrorCode(err) != privalytics.EINVALID {
			t.Errorf("rectify %v: error %v, want EINVALID", bad, err)
		}
	}
	if _, err := s.Rectify(ctx, "t1", retail, 42, map[string]any{"country": "FR"}); privalytics.ErrorCode(err) != privalytics.ENOTFOUND {
		t.Errorf("rectify of an unknown subject: %v, want ENOTFOUND", err)
	}
}

// TestCompactDueRetriesPendingWork: an erasure whose background compaction
// did not run is made physical by CompactDue, which the server calls every
// retention period.
func TestCompactDueRetriesPendingWork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir, 1_000_000, nil)
	defer s.Close()
	s.manualCompaction = true // stands for a compaction that failed
	appendAll(t, s, 0, batches(0, 3, 30))
	rc, err := s.Erase(ctx, "t1", retail, []uint64{victim})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Receipt(ctx, "t1", retail, rc.ID); r.Status != privalytics.ErasurePending {
		t.Fatalf("receipt before CompactDue: %+v, want pending", r)
	}
	if hits := filesHolding(t, dir, subjectNeedles(victim)); len(hits) == 0 {
		t.Fatal("before CompactDue no file holds the subject, so the check after it proves nothing")
	}
	if err := s.CompactDue(ctx); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Receipt(ctx, "t1", retail, rc.ID); r.Status != privalytics.ErasureComplete {
		t.Errorf("receipt after CompactDue: %+v, want complete", r)
	}
	if hits := filesHolding(t, dir, subjectNeedles(victim)); len(hits) > 0 {
		t.Errorf("after CompactDue the subject remains:\n%v", hits)
	}
}
