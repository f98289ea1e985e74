package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
)

// treeBytes maps every file under dir (relative path) to a hash of its bytes,
// so a test can show that a refused load changed nothing.
func treeBytes(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		sum := sha256.Sum256(raw)
		out[rel] = hex.EncodeToString(sum[:8])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// mountTmpfs mounts a tmpfs of the given size on a new directory, for tests
// that need a disk that fills up. Mounting needs root: the test skips (saying
// so) when it cannot, except in CI, where it must run.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "small-disk")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount a %s tmpfs on %s: %v (CI runs as root and must run the disk-full test)", size, dir, err)
		}
		t.Skipf("cannot mount a %s tmpfs on %s (%v): run as root to test a full disk", size, dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes a file of zeros into dir until the disk is full but for
// about leave bytes, and returns its path.
func fillDisk(t *testing.T, dir string, leave int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	path := filepath.Join(dir, "filler")
	if err := os.WriteFile(path, make([]byte, max(free-leave, 0)), 0o600); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	}
	return path
}

// On a full disk appends fail with ESTORAGEFULL and leave nothing behind; once
// space is freed under the running store, appends succeed again, and after a
// restart every acknowledged batch is there exactly once (the issue: 40 of 40
// batches acknowledged after the disk had room again were deleted).
func TestDiskFullLosesNothingAcknowledged(t *testing.T) {
	for _, enc := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypted=%v", enc), func(t *testing.T) {
			disk := mountTmpfs(t, "8m")
			dir := filepath.Join(disk, "events")
			opt := Options{SealRows: 2_000, SyncWrites: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			if enc {
				opt.Encryption = testMasterKey(t)
			}
			s, err := Open(dir, opt)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			var acked []arrow.Record
			appendOne := func(b int) error {
				rec := testRecord(b, 20)
				_, err := s.Append(ctx, "t1", retail, privalytics.Batch{Record: rec, IdempotencyKey: fmt.Sprintf("k%d", b)})
				if err == nil {
					acked = append(acked, rec)
				}
				return err
			}
			b := 0
			for ; b < 10; b++ {
				if err := appendOne(b); err != nil {
					t.Fatalf("append %d before the disk filled: %v", b, err)
				}
			}
			filler := fillDisk(t, disk, 64<<10)
			failed := 0
			for ; failed < 20 && b < 10_000; b++ {
				if err := appendOne(b); err != nil {
					if code := privalytics.ErrorCode(err); code != privalytics.ESTORAGEFULL {
						t.Fatalf("append %d on a full disk: code %q (%v), want %q", b, code, err, privalytics.ESTORAGEFULL)
					}
					failed++
				}
			}
			if failed == 0 {
				t.Fatal("the disk never filled up")
			}
			t.Logf("%d batches acknowledged before the disk filled, %d refused", len(acked), failed)
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			for range 40 {
				if err := appendOne(b); err != nil {
					t.Fatalf("append %d after space was freed: %v", b, err)
				}
				b++
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, err = Open(dir, opt)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if diff := cmp.Diff(tableOf(t, acked), snapshotTable(t, s)); diff != "" {
				t.Errorf("rows after the restart (-acknowledged +stored):\n%s", diff)
			}
		})
	}
}

// damageBase builds a tenant with one segment and two logs (the newest from a
// restart) and returns its directory and every row stored.
func damageBase(t *testing.T, enc bool) (string, []arrow.Record) {
	t.Helper()
	dir := t.TempDir()
	opt := Options{SealRows: 1_000_000, SyncWrites: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if enc {
		opt.Encryption = testMasterKey(t)
	}
	recs := batches(0, 7, 20)
	s, err := Open(dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, s, 0, recs[:3])
	if err := s.Seal(context.Background(), "t1"); err != nil {
		t.Fatal(err)
	}
	appendAll(t, s, 3, recs[3:5])
	s.Close()
	if s, err = Open(dir, opt); err != nil {
		t.Fatal(err)
	}
	appendAll(t, s, 5, recs[5:])
	s.Close()
	return dir, recs
}

func flipAt(t *testing.T, path string, off func(size int64) int64) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[off(int64(len(raw)))] ^= 0x10
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Every damage to a log, a segment, the MANIFEST or KEYS ends in a refusal
// that names the file and changes nothing (or, for a torn tail, in the rows
// that were acknowledged): never a silent wrong answer, a hang or a deletion.
func TestDamageIsRefusedNamingTheFile(t *testing.T) {
	t.Parallel()
	wal := func(dir string, n int) string { return filepath.Join(dir, "t1", "wal", logName(n)) }
	seg := filepath.Join("t1", "segments", "00000001.parquet")
	middle := func(size int64) int64 { return size / 2 }
	last := func(size int64) int64 { return size - 30 }
	cases := []struct {
		name    string
		damage  func(t *testing.T, dir string)
		file    string // the file the refusal names
		problem string
		encOnly bool
	}{
		{"wal flip in an older log", func(t *testing.T, dir string) { flipAt(t, wal(dir, 2), middle) }, "wal/00000002.log", "", false},
		{"wal flip in the newest log's last frame", func(t *testing.T, dir string) { flipAt(t, wal(dir, 3), last) }, "wal/00000003.log", "damaged in place", false},
		{"wal flip in a frame length", func(t *testing.T, dir string) {
			offs, _ := frameOffsets(t, wal(dir, 3))
			flipAt(t, wal(dir, 3), func(int64) int64 { return offs[len(offs)-1] + 6 })
		}, "wal/00000003.log", "", false},
		{"wal truncated in an older log", func(t *testing.T, dir string) {
			if err := os.Truncate(wal(dir, 2), 100); err != nil {
				t.Fatal(err)
			}
		}, "wal/00000002.log", "later logs follow", false},
		{"wal deleted (older)", func(t *testing.T, dir string) { os.Remove(wal(dir, 2)) }, "wal/00000002.log", "is missing", false},
		{"wal deleted (newest)", func(t *testing.T, dir string) { os.Remove(wal(dir, 3)) }, "wal/00000003.log", "is missing", false},
		{"wal from a newer build", func(t *testing.T, dir string) {
			offs, _ := frameOffsets(t, wal(dir, 3))
			raw, _ := os.ReadFile(wal(dir, 3))
			raw[offs[1]+3] = '2' // "PVL2" / "PVE2"
			os.WriteFile(wal(dir, 3), raw, 0o600)
		}, "wal/00000003.log", "newer build", false},
		{"segment flip", func(t *testing.T, dir string) { flipAt(t, filepath.Join(dir, seg), middle) }, "segments/00000001.parquet", "checksum", false},
		{"segment truncated", func(t *testing.T, dir string) { os.Truncate(filepath.Join(dir, seg), 200) }, "segments/00000001.parquet", "bytes", false},
		{"segment deleted", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, seg)) }, "segments/00000001.parquet", "cannot be opened", false},
		{"MANIFEST deleted", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "t1", "MANIFEST")) }, "MANIFEST", "is missing", false},
		{"MANIFEST truncated", func(t *testing.T, dir string) { os.Truncate(filepath.Join(dir, "t1", "MANIFEST"), 40) }, "MANIFEST", "cannot be read", false},
		{"MANIFEST from a newer build", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "t1", "MANIFEST")
			raw, _ := os.ReadFile(p)
			os.WriteFile(p, []byte(strings.Replace(string(raw), `"version": 1`, `"version": 2`, 1)), 0o600)
		}, "MANIFEST", "newer build", false},
		{"MANIFEST missing a segment", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "t1", "MANIFEST")
			m, _ := readManifest(p)
			m.Segments = nil
			writeManifest(filepath.Join(dir, "t1"), m)
		}, "segments/00000001.parquet", "not named by the MANIFEST", false},
		{"MANIFEST sealed_through ahead of the logs", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "t1", "MANIFEST")
			m, _ := readManifest(p)
			m.SealedThrough = 2
			writeManifest(filepath.Join(dir, "t1"), m)
		}, "wal/00000002.log", "sealed_through", false},
		{"KEYS deleted", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "t1", "KEYS")) }, "KEYS", "is missing", true},
	}
	for _, enc := range []bool{false, true} {
		base, _ := damageBase(t, enc)
		for _, tc := range cases {
			if tc.encOnly && !enc {
				continue
			}
			t.Run(fmt.Sprintf("%s/encrypted=%v", tc.name, enc), func(t *testing.T) {
				dir := t.TempDir()
				copyDir(t, base, dir)
				tc.damage(t, dir)
				before := treeBytes(t, dir)
				opt := Options{SyncWrites: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
				if enc {
					opt.Encryption = testMasterKey(t)
				}
				s, err := Open(dir, opt)
				if err != nil {
					t.Fatal(err)
				}
				_, err = s.Snapshot(context.Background(), "t1", retail)
				if cerr := s.Close(); cerr != nil {
					t.Errorf("close: %v", cerr)
				}
				var d *Damage
				if !errors.As(err, &d) {
					t.Fatalf("snapshot error = %v, want a refusal (Damage)", err)
				}
				if want := filepath.Join("t1", tc.file); d.File != want || !strings.Contains(d.Problem, tc.problem) {
					t.Errorf("refusal names %s: %q; want %s and %q", d.File, d.Problem, want, tc.problem)
				}
				if diff := cmp.Diff(before, treeBytes(t, dir)); diff != "" {
					t.Errorf("a refused load changed files (-before +after):\n%s", diff)
				}
				ds, err := Fsck(dir, opt)
				if err != nil || len(ds) == 0 {
					t.Errorf("fsck found %v (err %v), want the damage", ds, err)
				}
			})
		}
	}
}

// Repair gives back every acknowledged row where the damage left a copy of
// it: a lost MANIFEST, a MANIFEST that forgot a segment, sealed_through ahead.
func TestRepairRestoresEveryRowItCan(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		keep   func(recs []arrow.Record) []arrow.Record
	}{
		{"MANIFEST deleted", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "t1", "MANIFEST")) }, nil},
		{"MANIFEST missing a segment", func(t *testing.T, dir string) {
			m, _ := readManifest(filepath.Join(dir, "t1", "MANIFEST"))
			m.Segments = nil
			writeManifest(filepath.Join(dir, "t1"), m)
		}, nil},
		{"sealed_through ahead", func(t *testing.T, dir string) {
			m, _ := readManifest(filepath.Join(dir, "t1", "MANIFEST"))
			m.SealedThrough = 2
			writeManifest(filepath.Join(dir, "t1"), m)
		}, nil},
		{"segment flipped", func(t *testing.T, dir string) {
			flipAt(t, filepath.Join(dir, "t1", "segments", "00000001.parquet"), func(n int64) int64 { return n / 2 })
		}, func(recs []arrow.Record) []arrow.Record { return recs[3:] }},
	}
	for _, enc := range []bool{false, true} {
		base, recs := damageBase(t, enc)
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/encrypted=%v", tc.name, enc), func(t *testing.T) {
				dir := t.TempDir()
				copyDir(t, base, dir)
				tc.damage(t, dir)
				opt := Options{SyncWrites: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
				if enc {
					opt.Encryption = testMasterKey(t)
				}
				fixed, left, err := Repair(dir, opt)
				if err != nil || len(fixed) == 0 || len(left) != 0 {
					t.Fatalf("repair: fixed %v, left %v, err %v", fixed, left, err)
				}
				s, err := Open(dir, opt)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				want := recs
				if tc.keep != nil {
					want = tc.keep(recs)
				}
				if diff := cmp.Diff(tableOf(t, want), snapshotTable(t, s)); diff != "" {
					t.Errorf("rows after repair (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// 2,000 tenants ingest under a limit of 1,024 file descriptors, then restart
// with every row. The limit applies to a child process (this test binary run
// again), so other tests keep theirs.
func TestManyTenantsUnderALowFileLimit(t *testing.T) {
	const tenants = 2_000
	if dir := os.Getenv("EVENTS_FD_CHILD_DIR"); dir != "" {
		lim := syscall.Rlimit{Cur: 1024, Max: 1024}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatalf("setrlimit: %v", err)
		}
		// This process runs only this test: skipping fsync (which says
		// nothing about descriptors) keeps 4,000 tenant loads fast.
		fsys = noSyncFS{}
		ctx := context.Background()
		opt := Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		s, err := Open(dir, opt)
		if err != nil {
			t.Fatal(err)
		}
		for round := range 2 {
			for i := range tenants {
				id := fmt.Sprintf("t%d", i)
				if _, err := s.Append(ctx, id, retail, privalytics.Batch{Record: testRecord(round*tenants+i, 3)}); err != nil {
					t.Fatalf("append round %d to %s: %v", round, id, err)
				}
			}
		}
		if n := s.openLogs.len(); n > 512 {
			t.Errorf("%d logs open, want at most 512", n)
		}
		s.Close()
		if s, err = Open(dir, opt); err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for i := range tenants {
			snap, err := s.Snapshot(ctx, fmt.Sprintf("t%d", i), retail)
			if err != nil {
				t.Fatalf("snapshot t%d: %v", i, err)
			}
			recs := make([]arrow.Record, len(snap.Chunks))
			for j, c := range snap.Chunks {
				recs[j] = c.Record
			}
			if diff := cmp.Diff(tableOf(t, []arrow.Record{testRecord(i, 3), testRecord(tenants+i, 3)}), tableOf(t, recs)); diff != "" {
				t.Fatalf("tenant t%d after restart (-want +got):\n%s", i, diff)
			}
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestManyTenantsUnderALowFileLimit$", "-test.count=1")
	cmd.Env = append(os.Environ(), "EVENTS_FD_CHILD_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("child under a 1,024-descriptor limit: %v\n%s", err, out)
	}
}

// Preload loads tenants in the background; Readiness says "loading" until it
// is done, then names a tenant that failed, while the others are served.
func TestPreloadAndReadiness(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	s := openStore(t, dir, 1_000_000, nil)
	for _, id := range []string{"good", "bad"} {
		if _, err := s.Append(ctx, id, retail, privalytics.Batch{Record: testRecord(0, 10)}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if err := os.Remove(filepath.Join(dir, "bad", "wal", logName(1))); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, 1_000_000, nil)
	defer s.Close()
	s.Preload(map[string]privalytics.Schema{"good": retail, "bad": retail})
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for err = s.Readiness(); err != nil && strings.Contains(err.Error(), "loading tenants"); err = s.Readiness() {
		if time.Now().After(deadline) {
			t.Fatal("preload never finished")
		}
		time.Sleep(time.Millisecond)
	}
	if err == nil || !strings.Contains(err.Error(), "1 tenants failed to load") || privalytics.ErrorDetails(err)["bad"] == nil {
		t.Fatalf("readiness after preload = %v (details %v), want tenant bad named", err, privalytics.ErrorDetails(err))
	}
	if s.loaded("good") == nil {
		t.Error("tenant good was not preloaded")
	}
	if st, _ := s.Stats("good"); st.Rows != 10 {
		t.Errorf("tenant good holds %d rows, want 10", st.Rows)
	}
}

// A panic while loading a tenant (the issue: a Parquet decoder panicking on a
// damaged page) never wedges it: the request gets an error at once, a later
// request tries again, and Close returns.
func TestPanicWhileLoadingNeverWedges(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStore(t, dir, 1_000_000, nil)
	appendAll(t, s, 0, batches(0, 2, 5))
	s.Close()
	var lb logBuffer
	s = openStore(t, dir, 1_000_000, &lb)
	panics := 1
	s.loadHook = func(string) {
		if panics > 0 {
			panics--
			panic("CRC check failed")
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Snapshot(context.Background(), "t1", retail)
		done <- err
	}()
	select {
	case err := <-done:
		if privalytics.ErrorCode(err) != privalytics.EUNAVAILABLE || !strings.Contains(lb.String(), "CRC check failed") {
			t.Fatalf("snapshot after a panic: %v (log %s), want EUNAVAILABLE and the panic logged", err, lb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a request hung after a panic while loading")
	}
	if got := snapshotTable(t, s); len(got["order_id"]) != 10 {
		t.Errorf("the retry after the panic holds %d rows, want 10", len(got["order_id"]))
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung after a panic while loading")
	}
}

// A tenant an older build wrote (no last_log or logs_from in its MANIFEST)
// may have gaps in its logs, left by that build's recovery deleting logs
// after a corrupt frame: it loads, and only logs from now on are checked.
func TestOlderBuildsLogGapsAreAccepted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	recs := batches(0, 3, 5)
	for i := range recs { // one log per restart: 1, 2, 3
		s := openStore(t, dir, 1_000_000, nil)
		appendAll(t, s, i, recs[i:i+1])
		s.Close()
	}
	// The older build deleted log 2 (and lost its batch) after a corrupt frame.
	if err := os.Remove(filepath.Join(dir, "t1", "wal", logName(2))); err != nil {
		t.Fatal(err)
	}
	m, err := readManifest(filepath.Join(dir, "t1", "MANIFEST"))
	if err != nil {
		t.Fatal(err)
	}
	m.LastLog, m.LogsFrom = 0, 0 // as an older build wrote it
	if err := writeManifest(filepath.Join(dir, "t1"), m); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, dir, 1_000_000, nil)
	defer s.Close()
	if diff := cmp.Diff(tableOf(t, []arrow.Record{recs[0], recs[2]}), snapshotTable(t, s)); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

// A segment entry an older build wrote has no checksum; the first load adds
// it, so a later flip is caught.
func TestOlderSegmentEntriesGainAChecksum(t *testing.T) {
	t.Parallel()
	dir, _ := damageBase(t, false)
	mp := filepath.Join(dir, "t1", "MANIFEST")
	m, err := readManifest(mp)
	if err != nil {
		t.Fatal(err)
	}
	want := m.Segments[0]
	m.Segments[0].Bytes, m.Segments[0].CRC = 0, 0
	if err := writeManifest(filepath.Join(dir, "t1"), m); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, dir, 1_000_000, nil)
	snapshot(t, s)
	s.Close()
	if m, err = readManifest(mp); err != nil || m.Segments[0].Bytes != want.Bytes || m.Segments[0].CRC != want.CRC {
		t.Fatalf("entry after loading: %+v (err %v), want bytes %d crc %08x", m.Segments[0], err, want.Bytes, want.CRC)
	}
}

// Concurrent appends to many tenants through a tiny LRU of open logs: logs
// close and reopen under writers, and every acknowledged row is kept once.
func TestTinyLogLRUUnderConcurrentAppends(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opt := Options{MaxOpenLogs: 3, SealRows: 150, SyncWrites: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s, err := Open(dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	const tenants, writers, each = 12, 6, 30
	ctx := context.Background()
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for i := range each {
				b := w*each + i
				id := fmt.Sprintf("t%d", b%tenants)
				if _, err := s.Append(ctx, id, retail, privalytics.Batch{Record: testRecord(b, 5)}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := s.openLogs.len(); n > 3+writers {
		t.Errorf("%d logs open with a capacity of 3", n)
	}
	s.Close()
	if s, err = Open(dir, opt); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	total := 0
	for i := range tenants {
		snap, err := s.Snapshot(ctx, fmt.Sprintf("t%d", i), retail)
		if err != nil {
			t.Fatal(err)
		}
		total += snap.Rows()
	}
	if total != writers*each*5 {
		t.Errorf("%d rows after restart, want %d", total, writers*each*5)
	}
}

// Restarts without appends do not leave an empty log each.
func TestRestartsReuseAnEmptyNewestLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStore(t, dir, 1_000_000, nil)
	appendAll(t, s, 0, batches(0, 1, 5))
	s.Close()
	for range 5 {
		s = openStore(t, dir, 1_000_000, nil)
		snapshot(t, s)
		s.Close()
	}
	if logs := walFiles(t, dir); len(logs) != 2 {
		t.Errorf("after five restarts without appends: logs %v, want two (the full one and one empty)", logs)
	}
}

// A tenant still loads (and answers) after a restart on a full disk.
func TestRestartOnAFullDiskStillLoads(t *testing.T) {
	disk := mountTmpfs(t, "4m")
	dir := filepath.Join(disk, "events")
	s := openStore(t, dir, 1_000_000, nil)
	recs := batches(0, 3, 10)
	appendAll(t, s, 0, recs)
	s.Close()
	fillDisk(t, disk, 0)
	s = openStore(t, dir, 1_000_000, nil)
	defer s.Close()
	if diff := cmp.Diff(tableOf(t, recs), snapshotTable(t, s)); diff != "" {
		t.Errorf("rows after a restart on a full disk (-want +got):\n%s", diff)
	}
}

// A lost MANIFEST of a tenant with only logs is refused once this build has
// written one (an erasure it held would be undone by replaying the logs); a
// tenant an older build left without one (no marker) replays its logs.
func TestLostManifestWithOnlyLogsIsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStore(t, dir, 1_000_000, nil)
	s.manualCompaction = true
	recs := batches(0, 3, 5)
	appendAll(t, s, 0, recs)
	if _, err := s.Erase(context.Background(), "t1", retail, []uint64{victim}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.Remove(filepath.Join(dir, "t1", "MANIFEST")); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, 1_000_000, nil)
	_, err := s.Snapshot(context.Background(), "t1", retail)
	s.Close()
	var d *Damage
	if !errors.As(err, &d) || d.File != filepath.Join("t1", "MANIFEST") {
		t.Fatalf("snapshot with the MANIFEST lost: %v, want a refusal naming it", err)
	}
	// Without the marker it is an older build's tenant: the logs replay.
	if err := os.Remove(filepath.Join(dir, "t1", markerFile)); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, 1_000_000, nil)
	defer s.Close()
	if diff := cmp.Diff(tableOf(t, recs), snapshotTable(t, s)); diff != "" {
		t.Errorf("an older build's tenant without a MANIFEST (-want +got):\n%s", diff)
	}
}
