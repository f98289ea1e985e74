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
	"path/filepath"
	"syscall"
	"testing"

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
