package events

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/privalytics/privalytics"
)

// The crash-point test, in the spirit of ALICE (Pillai et al., OSDI 2014): run
// ingest → seal → restart → erasure → compaction once while recording every
// change the store makes to its files, then rebuild the directory as a crash
// after each operation would leave it (every operation before the cut done, in
// order; and, for writes, the cut write half done) and recover each. Every
// batch acknowledged before the cut must be there exactly once, every erasure
// acknowledged before it must hide its rows, nothing may be half there, and
// recovery must never refuse: a crash is not damage.

// fsOp is one recorded change.
type fsOp struct {
	kind string // create, write, truncate, rename, remove, mkdir
	path string // relative to the recorded root
	to   string // rename target
	off  int64  // write offset, truncate size
	data []byte
}

// recordingFS applies every operation to the real file system and records
// those under root.
type recordingFS struct {
	root string
	mu   sync.Mutex
	ops  []fsOp
}

func (r *recordingFS) rel(p string) (string, bool) {
	rel, err := filepath.Rel(r.root, p)
	if err != nil || strings.HasPrefix(rel, "..") {
		return "", false
	}
	return rel, true
}

func (r *recordingFS) record(op fsOp) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

func (r *recordingFS) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ops)
}

func (r *recordingFS) OpenFile(name string, flag int, perm os.FileMode) (fsFile, error) {
	rel, ok := r.rel(name)
	_, statErr := os.Stat(name)
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	if !ok {
		return f, nil
	}
	if flag&os.O_CREATE != 0 && os.IsNotExist(statErr) {
		r.record(fsOp{kind: "create", path: rel})
	} else if flag&os.O_TRUNC != 0 {
		r.record(fsOp{kind: "truncate", path: rel})
	}
	return &recordingFile{File: f, fs: r, rel: rel, appendOnly: flag&os.O_APPEND != 0}, nil
}

func (r *recordingFS) Rename(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return err
	}
	if a, ok := r.rel(from); ok {
		b, _ := r.rel(to)
		r.record(fsOp{kind: "rename", path: a, to: b})
	}
	return nil
}

func (r *recordingFS) Remove(name string) error {
	if err := os.Remove(name); err != nil {
		return err
	}
	if rel, ok := r.rel(name); ok {
		r.record(fsOp{kind: "remove", path: rel})
	}
	return nil
}

func (r *recordingFS) MkdirAll(path string, perm os.FileMode) error {
	if err := os.MkdirAll(path, perm); err != nil {
		return err
	}
	if rel, ok := r.rel(path); ok {
		r.record(fsOp{kind: "mkdir", path: rel})
	}
	return nil
}

// Syncs are not recorded (every operation before a cut counts as done) and
// are skipped, so thousands of recoveries run in seconds.
func (r *recordingFS) SyncDir(string) error { return nil }

func (f *recordingFile) Sync() error { return nil }

// noSyncFS is the real file system without fsync, for the recoveries.
type noSyncFS struct{}

type noSyncFile struct{ *os.File }

func (noSyncFile) Sync() error { return nil }

func (noSyncFS) OpenFile(name string, flag int, perm os.FileMode) (fsFile, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}
func (noSyncFS) Rename(from, to string) error                 { return os.Rename(from, to) }
func (noSyncFS) Remove(name string) error                     { return os.Remove(name) }
func (noSyncFS) MkdirAll(path string, perm os.FileMode) error { return os.MkdirAll(path, perm) }
func (noSyncFS) SyncDir(string) error                         { return nil }

type recordingFile struct {
	*os.File
	fs         *recordingFS
	rel        string
	appendOnly bool
	pos        int64
}

func (f *recordingFile) Write(p []byte) (int, error) {
	off := f.pos
	if f.appendOnly {
		fi, err := f.File.Stat()
		if err != nil {
			return 0, err
		}
		off = fi.Size()
	}
	n, err := f.File.Write(p)
	if n > 0 {
		f.fs.record(fsOp{kind: "write", path: f.rel, off: off, data: append([]byte(nil), p[:n]...)})
	}
	f.pos = off + int64(n)
	return n, err
}

func (f *recordingFile) Truncate(size int64) error {
	if err := f.File.Truncate(size); err != nil {
		return err
	}
	f.fs.record(fsOp{kind: "truncate", path: f.rel, off: size})
	return nil
}

// apply performs op (its first n bytes, for a write) under dir.
func apply(t *testing.T, dir string, op fsOp, n int) {
	t.Helper()
	p := filepath.Join(dir, op.path)
	var err error
	switch op.kind {
	case "create":
		var f *os.File
		if f, err = os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
			f.Close()
		}
	case "write":
		var f *os.File
		if f, err = os.OpenFile(p, os.O_WRONLY, 0); err == nil {
			_, err = f.WriteAt(op.data[:n], op.off)
			f.Close()
		}
	case "truncate":
		err = os.Truncate(p, op.off)
	case "rename":
		err = os.Rename(p, filepath.Join(dir, op.to))
	case "remove":
		err = os.Remove(p)
	case "mkdir":
		err = os.MkdirAll(p, 0o700)
	}
	if err != nil {
		t.Fatalf("replay %s %s: %v", op.kind, op.path, err)
	}
}

// crashAck is what the workload was told was durable, and when: after ops[:at].
type crashAck struct {
	at    int
	batch int    // >= 0: a batch; -1: an erasure
	subj  uint64 // the erased subject
	upTo  int    // the erasure covers batches below upTo
}

func TestCrashPointsKeepEveryAcknowledgedEventOnce(t *testing.T) {
	// Plaintext at full length (over 1,000 points); encrypted at rest shorter,
	// with a key rotation whose re-encryption the last compaction does.
	t.Run("encrypted=false", func(t *testing.T) {
		crashPoints(t, crashWorkload{batches: 490, restartAt: 230, erase: [2]int{150, 370}, minPoints: 1000})
	})
	t.Run("encrypted=true", func(t *testing.T) {
		crashPoints(t, crashWorkload{batches: 130, restartAt: 70, erase: [2]int{50, 100}, rotateAt: 85, encrypted: true, minPoints: 250})
	})
}

type crashWorkload struct {
	batches, restartAt, rotateAt int
	erase                        [2]int // batches after which a customer is erased; compaction follows the second
	encrypted                    bool
	minPoints                    int
}

func crashPoints(t *testing.T, w crashWorkload) {
	start := time.Now()
	root := filepath.Join(t.TempDir(), "live")
	rec := &recordingFS{root: root}
	fsys = rec
	defer func() { fsys = osFS{} }()

	const rows = 4
	batchCount := w.batches
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var wrap KeyWrapper
	if w.encrypted {
		wrap = testMasterKey(t)
	}
	open := func(dir string) *Store {
		s, err := Open(dir, Options{SealRows: 1 << 30, SyncWrites: true, Logger: quiet, Encryption: wrap})
		if err != nil {
			t.Fatal(err)
		}
		s.manualCompaction = true // compaction runs where the workload says, so the record is one sequence
		return s
	}
	subjectOf := func(b, i int) uint64 { return uint64((b*7+i)%13) * 0x9E3779B97F4A7C15 }
	s := open(root)
	var acks []crashAck
	for b := range batchCount {
		if _, err := s.Append(ctx, "t1", retail, privalytics.Batch{Record: testRecord(b, rows), IdempotencyKey: fmt.Sprintf("k%d", b)}); err != nil {
			t.Fatal(err)
		}
		acks = append(acks, crashAck{at: rec.count(), batch: b})
		switch {
		case b%80 == 79:
			if err := s.Seal(ctx, "t1"); err != nil {
				t.Fatal(err)
			}
		case b == w.restartAt: // a restart in the middle: a new log, the manifest rewritten
			s.Close()
			s = open(root)
		case b == w.rotateAt && w.encrypted:
			if err := s.RotateKey(ctx, "t1", retail); err != nil {
				t.Fatal(err)
			}
		case b == w.erase[0] || b == w.erase[1]:
			subj := subjectOf(b, 0)
			if _, err := s.Erase(ctx, "t1", retail, []uint64{subj}); err != nil {
				t.Fatal(err)
			}
			acks = append(acks, crashAck{at: rec.count(), batch: -1, subj: subj, upTo: b + 1})
			if b == w.erase[1] {
				if err := s.Compact(ctx, "t1", retail); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := s.Compact(ctx, "t1", retail); err != nil {
		t.Fatal(err)
	}
	s.Close()
	fsys = noSyncFS{}
	ops := rec.ops

	// Replay: base holds ops[:k]; each crash state is a copy of it (plus half
	// of op k when it is a write), recovered by a fresh store.
	base := filepath.Join(t.TempDir(), "base")
	if err := os.MkdirAll(base, 0o700); err != nil {
		t.Fatal(err)
	}
	scratch := t.TempDir()
	points := 0
	check := func(k int, torn bool) {
		points++
		dir := filepath.Join(scratch, fmt.Sprintf("p%d", points))
		copyDir(t, base, dir)
		if torn {
			apply(t, dir, ops[k], len(ops[k].data)/2) // ops[:k] done, op k half: acks up to k count
		}
		s, err := Open(dir, Options{SyncWrites: true, Logger: quiet, Encryption: wrap})
		if err != nil {
			t.Fatal(err)
		}
		s.manualCompaction = true
		snap, err := s.Snapshot(ctx, "t1", retail)
		s.Close()
		if err != nil {
			t.Fatalf("crash after op %d (torn %v): recovery refused: %v", k, torn, err)
		}
		seen := map[string]int{}
		for _, c := range snap.Chunks {
			r := privalytics.WidenRecord(c.Record, retail.Arrow())
			col := r.Column(retail.Arrow().FieldIndices("order_id")[0]).(*array.Dictionary)
			dict := col.Dictionary().(*array.String)
			for i := range col.Len() {
				seen[dict.Value(col.GetValueIndex(i))]++
			}
		}
		for _, a := range acks {
			if a.batch < 0 {
				continue
			}
			present := 0
			for i := range rows {
				id := fmt.Sprintf("b%d-%d", a.batch, i)
				n := seen[id]
				if n > 1 {
					t.Fatalf("crash after op %d (torn %v): row %s is there %d times", k, torn, id, n)
				}
				erased := false
				for _, e := range acks {
					if e.batch < 0 && e.at <= k && a.batch < e.upTo && subjectOf(a.batch, i) == e.subj {
						erased = true
					}
				}
				switch {
				case erased && n > 0:
					t.Fatalf("crash after op %d (torn %v): row %s of an erased customer is visible", k, torn, id)
				case !erased && a.at <= k && n == 0:
					t.Fatalf("crash after op %d (torn %v): acknowledged row %s is lost", k, torn, id)
				}
				present += n
			}
			if a.at > k && present != 0 && present != rows {
				// An unacknowledged batch is all there or not at all (no
				// erasure touches it: only acknowledged batches were erased).
				t.Fatalf("crash after op %d (torn %v): batch %d is partly there (%d of %d rows)", k, torn, a.batch, present, rows)
			}
		}
		os.RemoveAll(dir)
	}
	for k := 0; k <= len(ops); k++ {
		check(k, false)
		if k < len(ops) {
			if ops[k].kind == "write" && len(ops[k].data) > 1 {
				check(k, true)
			}
			apply(t, base, ops[k], len(ops[k].data))
		}
	}
	t.Logf("%d file-system operations recorded; %d crash points recovered and checked in %v", len(ops), points, time.Since(start).Round(time.Millisecond))
	if points < w.minPoints {
		t.Errorf("only %d crash points; the workload must give at least %d", points, w.minPoints)
	}
}
