package events

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
)

// imageFiles lists the load images of tenant t1.
func imageFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "t1", "segments", "*"+imageSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// twoSegments builds a store with two sealed segments (and their images) and
// rows in the log, and returns the rows it holds.
func twoSegments(t *testing.T, dir string, open func() *Store) table {
	t.Helper()
	ctx := context.Background()
	s := open()
	first, second, tail := batches(0, 4, 40), batches(4, 7, 40), batches(7, 8, 40)
	appendAll(t, s, 0, first)
	if err := s.Seal(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	appendAll(t, s, 4, second)
	if err := s.Seal(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	appendAll(t, s, 7, tail)
	if got := s.imageWrites.Load(); got != 2 {
		t.Errorf("two seals wrote %d images, want 2", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return tableOf(t, append(append(append([]arrow.Record(nil), first...), second...), tail...))
}

func TestLoadImageIsUsedAndMatchesTheSegment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	want := twoSegments(t, dir, func() *Store { return openStore(t, dir, 1_000_000, nil) })
	if n := len(imageFiles(t, dir)); n != 2 {
		t.Fatalf("%d image files after two seals, want 2", n)
	}
	s := openStore(t, dir, 1_000_000, nil)
	if diff := cmp.Diff(want, snapshotTable(t, s)); diff != "" {
		t.Errorf("loaded from images (-want +got):\n%s", diff)
	}
	if got, pq := s.imageLoads.Load(), s.parquetLoads.Load(); got != 2 || pq != 0 {
		t.Errorf("loads: %d from images, %d from Parquet; want 2 and 0", got, pq)
	}
	// The same rows in the same in-memory forms as a load from Parquet.
	fromImage := snapshot(t, s)
	s.Close()
	for _, f := range imageFiles(t, dir) {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	s = openStore(t, dir, 1_000_000, nil)
	fromParquet := snapshot(t, s)
	if got, pq := s.imageLoads.Load(), s.parquetLoads.Load(); got != 0 || pq != 2 {
		t.Errorf("without images: %d from images, %d from Parquet; want 0 and 2", got, pq)
	}
	if len(fromImage.Chunks) != len(fromParquet.Chunks) {
		t.Fatalf("%d chunks from images, %d from Parquet", len(fromImage.Chunks), len(fromParquet.Chunks))
	}
	for i := range fromImage.Chunks {
		a, b := fromImage.Chunks[i], fromParquet.Chunks[i]
		if !a.Record.Schema().Equal(b.Record.Schema()) {
			t.Errorf("chunk %d: image schema %s, Parquet %s", i, a.Record.Schema(), b.Record.Schema())
		}
		if !cmp.Equal(a.Subjects, b.Subjects) {
			t.Errorf("chunk %d: subject numbers differ", i)
		}
	}
	if err := s.Close(); err != nil { // waits for the background image writes
		t.Fatal(err)
	}
	if n := len(imageFiles(t, dir)); n != 2 {
		t.Errorf("after a load without images, %d were rewritten, want 2", n)
	}
	s = openStore(t, dir, 1_000_000, nil)
	defer s.Close()
	if diff := cmp.Diff(want, snapshotTable(t, s)); diff != "" {
		t.Errorf("loaded from rewritten images (-want +got):\n%s", diff)
	}
	if got := s.imageLoads.Load(); got != 2 {
		t.Errorf("rewritten images: %d loaded, want 2", got)
	}
}

func TestBadLoadImagesAreIgnored(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		spoil  func(t *testing.T, first, second string)
		reason string
	}{
		{"damaged", func(t *testing.T, _, second string) {
			raw := mustRead(t, second)
			raw[len(raw)/2] ^= 0x40
			mustWrite(t, second, raw)
		}, "checksum"},
		{"truncated", func(t *testing.T, _, second string) {
			raw := mustRead(t, second)
			mustWrite(t, second, raw[:len(raw)-100])
		}, "header says"},
		{"newer format", func(t *testing.T, _, second string) {
			raw := mustRead(t, second)
			raw[3] = '2'
			mustWrite(t, second, raw)
		}, "newer build"},
		{"stale: another segment's image", func(t *testing.T, first, second string) {
			mustWrite(t, second, mustRead(t, first))
		}, "not of the segment"},
		{"stale: an older version of the segment", func(t *testing.T, _, second string) {
			// A whole, checksummed image bound to another size and CRC of
			// the same file, holding different rows.
			seg := segment{File: filepath.Base(strings.TrimSuffix(second, imageSuffix)) + ".parquet", Bytes: 1234, CRC: 99}
			raw, err := encodeImage(seg, []arrow.Record{privalytics.CompactRecord(testRecord(50, 7))}, nil)
			if err != nil {
				t.Fatal(err)
			}
			mustWrite(t, second, raw)
		}, "not of the segment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			want := twoSegments(t, dir, func() *Store { return openStore(t, dir, 1_000_000, nil) })
			imgs := imageFiles(t, dir)
			if len(imgs) != 2 {
				t.Fatalf("%d images, want 2", len(imgs))
			}
			good := mustRead(t, imgs[1])
			tc.spoil(t, imgs[0], imgs[1])
			var lb logBuffer
			s := openStore(t, dir, 1_000_000, &lb)
			if diff := cmp.Diff(want, snapshotTable(t, s)); diff != "" {
				t.Errorf("with a bad image (-want +got):\n%s", diff)
			}
			if got, pq := s.imageLoads.Load(), s.parquetLoads.Load(); got != 1 || pq != 1 {
				t.Errorf("loads: %d from images, %d from Parquet; want 1 and 1", got, pq)
			}
			if !strings.Contains(lb.String(), "ignoring the load image") || !strings.Contains(lb.String(), tc.reason) {
				t.Errorf("the log does not say the image was ignored because %q:\n%s", tc.reason, lb.String())
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// Rewritten in the background: the same bytes but for nothing
			// random (plaintext images are deterministic).
			if got := mustRead(t, imgs[1]); !bytes.Equal(got, good) {
				t.Errorf("the rewritten image (%d bytes) differs from the one the seal wrote (%d bytes)", len(got), len(good))
			}
			s = openStore(t, dir, 1_000_000, nil)
			defer s.Close()
			snapshot(t, s)
			if got := s.imageLoads.Load(); got != 2 {
				t.Errorf("after the rewrite %d images loaded, want 2", got)
			}
		})
	}
}

func TestStrayImagesAreRemoved(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	want := twoSegments(t, dir, func() *Store { return openStore(t, dir, 1_000_000, nil) })
	segDir := filepath.Join(dir, "t1", "segments")
	stray := filepath.Join(segDir, "00000099"+imageSuffix)
	tmp := imageFiles(t, dir)[0] + ".tmp"
	mustWrite(t, stray, mustRead(t, imageFiles(t, dir)[0]))
	mustWrite(t, tmp, []byte("PVI1 half-written"))
	s := openStore(t, dir, 1_000_000, nil)
	defer s.Close()
	if diff := cmp.Diff(want, snapshotTable(t, s)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, f := range []string{stray, tmp} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", f, err)
		}
	}
}

func TestEncryptedLoadImageHoldsNoPlaintext(t *testing.T) {
	t.Parallel()
	recs := batches(0, 6, 40)
	needles := plaintextNeedles(t, recs)
	// Positive control: a plaintext image holds the needles.
	plainDir := t.TempDir()
	p := openStore(t, plainDir, 1_000_000, nil)
	appendAll(t, p, 0, recs)
	if err := p.Seal(context.Background(), "t1"); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if hits := filesHolding(t, filepath.Join(plainDir, "t1", "segments"), needles); !strings.Contains(strings.Join(hits, "\n"), imageSuffix) {
		t.Fatalf("a plaintext image holds none of the needles, so the encrypted check proves nothing: %v", hits)
	}

	dir := t.TempDir()
	s := openEncrypted(t, dir, 1_000_000)
	appendAll(t, s, 0, recs)
	if err := s.Seal(context.Background(), "t1"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	imgs := imageFiles(t, dir)
	if len(imgs) != 1 {
		t.Fatalf("%d images, want 1", len(imgs))
	}
	raw := mustRead(t, imgs[0])
	if n := binary.LittleEndian.Uint32(raw[4:]); !bytes.Equal(raw[8:12], encSegmentMagic[:]) || int(n) != len(raw)-12 {
		t.Errorf("the image body is not sealed: starts %q", raw[8:12])
	}
	for _, n := range needles {
		if bytes.Contains(raw, n) {
			t.Errorf("the encrypted image holds %q", n)
		}
	}
	s = openEncrypted(t, dir, 1_000_000)
	defer s.Close()
	if diff := cmp.Diff(tableOf(t, recs), snapshotTable(t, s)); diff != "" {
		t.Errorf("loaded from an encrypted image (-want +got):\n%s", diff)
	}
	if got := s.imageLoads.Load(); got != 1 {
		t.Errorf("%d images loaded, want 1", got)
	}
}

func TestErasureLeavesNoImageWithTheSubject(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, enc := range []bool{false, true} {
		dir := t.TempDir()
		open := func() *Store {
			if enc {
				return openEncrypted(t, dir, 100)
			}
			return openStore(t, dir, 100, nil)
		}
		s := open() // background seals: several segments, each with its image
		s.manualCompaction = true
		recs := batches(0, 8, 30)
		appendAll(t, s, 0, recs)
		if err := s.Seal(ctx, "t1"); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		imgs := imageFiles(t, dir)
		if len(imgs) == 0 {
			t.Fatalf("encrypted=%v: no images", enc)
		}
		if !enc {
			if hits := filesHolding(t, filepath.Join(dir, "t1", "segments"), subjectNeedles(victim)[:1]); !strings.Contains(strings.Join(hits, "\n"), imageSuffix) {
				t.Fatalf("no image holds the victim before erasure, so the check after it proves nothing: %v", hits)
			}
		}
		// Erase after a restart that loaded from the images.
		s = open()
		s.manualCompaction = true
		snapshot(t, s)
		if got := s.imageLoads.Load(); got != int64(len(imgs)) {
			t.Errorf("encrypted=%v: %d of %d images loaded", enc, got, len(imgs))
		}
		all := tableOf(t, recs)
		subj := all[privalytics.SubjectColumn]
		want, gone := without(all, func(i int) bool { return subj[i].(uint64) == victim })
		if len(gone) == 0 {
			t.Fatal("the test data holds no rows of the victim")
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
		// The subject's bytes (order IDs are no needle in an image: its
		// dictionaries run "b2-2" into "b2-20" of another customer).
		if hits := filesHolding(t, dir, subjectNeedles(victim)); len(hits) > 0 {
			t.Errorf("encrypted=%v: after erasure and compaction the subject remains:\n%v", enc, hits)
		}
		if len(imageFiles(t, dir)) == 0 {
			t.Errorf("encrypted=%v: compaction left no images", enc)
		}
		s = open()
		if diff := cmp.Diff(want, snapshotTable(t, s)); diff != "" {
			t.Errorf("encrypted=%v: after erasure and restart (-want +got):\n%s", enc, diff)
		}
		if s.imageLoads.Load() == 0 || s.parquetLoads.Load() != 0 {
			t.Errorf("encrypted=%v: after compaction %d segments loaded from images, %d from Parquet; want all from images", enc, s.imageLoads.Load(), s.parquetLoads.Load())
		}
		s.Close()
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func mustWrite(t *testing.T, path string, raw []byte) {
	t.Helper()
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A backup skips load images; the restored store loads from Parquet and
// writes them again.
func TestBackupSkipsImagesAndRestoreRebuildsThem(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	want := twoSegments(t, dir, func() *Store { return openStore(t, dir, 1_000_000, nil) })
	if len(imageFiles(t, dir)) != 2 {
		t.Fatal("no images to skip")
	}
	dest := filepath.Join(t.TempDir(), "backup")
	if _, err := Backup(dir, dest); err != nil {
		t.Fatal(err)
	}
	if imgs := imageFiles(t, dest); len(imgs) != 0 {
		t.Errorf("the backup holds load images: %v", imgs)
	}
	s := openStore(t, dest, 1_000_000, nil)
	if diff := cmp.Diff(want, snapshotTable(t, s)); diff != "" {
		t.Errorf("restored (-want +got):\n%s", diff)
	}
	if got, pq := s.imageLoads.Load(), s.parquetLoads.Load(); got != 0 || pq != 2 {
		t.Errorf("restored: %d segments from images, %d from Parquet; want 0 and 2", got, pq)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(imageFiles(t, dest)); n != 2 {
		t.Errorf("the restored store rebuilt %d images, want 2", n)
	}
}
