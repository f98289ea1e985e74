package events

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/store/keyring"
)

// testMasterKey is a fixed master key for tests only.
func testMasterKey(t testing.TB) *keyring.MasterKey {
	t.Helper()
	mk, err := keyring.MasterKeyFromEnv(base64.StdEncoding.EncodeToString([]byte("testInsecureMasterKey-32-bytes!!")))
	if err != nil {
		t.Fatal(err)
	}
	return mk
}

func openEncrypted(t testing.TB, dir string, sealRows int) *Store {
	t.Helper()
	s, err := Open(dir, Options{SealRows: sealRows, SyncWrites: true, Encryption: testMasterKey(t), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// plaintextNeedles are values every test batch holds, in the clear: the
// unique order_ids, and the subject bytes.
func plaintextNeedles(t *testing.T, recs []arrow.Record) [][]byte {
	var out [][]byte
	tab := tableOf(t, recs)
	for _, v := range tab["order_id"] {
		out = append(out, []byte(v.(string)))
	}
	return append(out, subjectNeedles(victim)[:2]...)
}

func TestEncryptedStoreHoldsNoPlaintext(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// The same data in a plaintext store shows the needles are findable.
	plainDir := t.TempDir()
	recs := batches(0, 6, 40)
	p := openStore(t, plainDir, 100, nil)
	appendAll(t, p, 0, recs)
	p.Close()
	needles := plaintextNeedles(t, recs)
	if hits := filesHolding(t, plainDir, needles); len(hits) == 0 {
		t.Fatal("a plaintext store holds none of the needles, so the encrypted check proves nothing")
	}

	dir := t.TempDir()
	s := openEncrypted(t, dir, 100) // background seals: segments and logs both
	appendAll(t, s, 0, recs)
	if err := s.Seal(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	appendAll(t, s, 100, batches(6, 7, 40))
	want := tableOf(t, append(recs, batches(6, 7, 40)...))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if hits := filesHolding(t, dir, needles); len(hits) > 0 {
		t.Errorf("with encryption on, files hold plaintext:\n%v", hits)
	}
	s = openEncrypted(t, dir, 100)
	if diff := cmp.Diff(want, snapshotTable(t, s)); diff != "" {
		t.Errorf("encrypted store after restart (-want +got):\n%s", diff)
	}
	s.Close()
	// Without the master key the store refuses, rather than cutting the log.
	n, _ := Open(dir, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer n.Close()
	if _, err := n.Snapshot(ctx, "t1", retail); privalytics.ErrorCode(err) != privalytics.ECONFLICT {
		t.Errorf("opening encrypted files without the key: %v, want ECONFLICT", err)
	}
}

func TestKeyRotationReencryptsAndKeepsServing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	// Written in plaintext first: turning encryption on re-encrypts old files too.
	p := openStore(t, dir, 1_000_000, nil)
	recs := batches(0, 6, 30)
	appendAll(t, p, 0, recs[:2])
	if err := p.Seal(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	p.Close()

	s := openEncrypted(t, dir, 1_000_000)
	s.manualCompaction = true
	appendAll(t, s, 2, recs[2:4])
	if err := s.Seal(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if err := s.RotateKey(ctx, "t1", retail); err != nil {
		t.Fatal(err)
	}
	appendAll(t, s, 4, recs[4:]) // under the new key, while old files are under the old one
	want := tableOf(t, recs)
	if diff := cmp.Diff(want, snapshotTable(t, s)); diff != "" {
		t.Errorf("after rotation (-want +got):\n%s", diff)
	}
	keysOf := func() keysFile {
		raw, err := os.ReadFile(filepath.Join(dir, "t1", "KEYS"))
		if err != nil {
			t.Fatal(err)
		}
		var kf keysFile
		if err := json.Unmarshal(raw, &kf); err != nil {
			t.Fatal(err)
		}
		return kf
	}
	if kf := keysOf(); len(kf.Keys) != 2 || kf.Current != 2 {
		t.Fatalf("KEYS after rotation: current %d, %d keys; want 2 of 2", kf.Current, len(kf.Keys))
	}
	if err := s.Compact(ctx, "t1", retail); err != nil {
		t.Fatal(err)
	}
	if kf := keysOf(); len(kf.Keys) != 1 || kf.Current != 2 {
		t.Errorf("KEYS after re-encryption: current %d, %d keys; want only key 2", kf.Current, len(kf.Keys))
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "t1", "segments"))
	for _, e := range ents {
		path := filepath.Join(dir, "t1", "segments", e.Name())
		if strings.HasSuffix(e.Name(), imageSuffix) {
			// A load image's body is sealed like a segment, after 8 bytes.
			raw, err := os.ReadFile(path)
			if err != nil || len(raw) < 16 || string(raw[8:12]) != "PVS1" || binary.LittleEndian.Uint32(raw[12:]) != 2 {
				t.Errorf("load image %s is not sealed under key 2 (%v)", e.Name(), err)
			}
			continue
		}
		kid, enc, err := segmentKey(path)
		if err != nil || !enc || kid != 2 {
			t.Errorf("segment %s: key %d, encrypted %v (%v); want key 2", e.Name(), kid, enc, err)
		}
	}
	s.Close()
	s = openEncrypted(t, dir, 1_000_000)
	defer s.Close()
	if diff := cmp.Diff(want, snapshotTable(t, s)); diff != "" {
		t.Errorf("after re-encryption and restart (-want +got):\n%s", diff)
	}
}

func TestShredMakesATenantUnreadable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openEncrypted(t, dir, 100)
	appendAll(t, s, 0, batches(0, 4, 40))
	backup := t.TempDir()
	copyDir(t, filepath.Join(dir, "t1"), filepath.Join(backup, "t1"))
	if err := s.Shred(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Snapshot(ctx, "t1", retail); privalytics.ErrorCode(err) != privalytics.ECONFLICT {
		t.Errorf("snapshot after shredding: %v, want ECONFLICT", err)
	}
	s.Close()
	s = openEncrypted(t, dir, 100)
	defer s.Close()
	if _, err := s.Snapshot(ctx, "t1", retail); privalytics.ErrorCode(err) != privalytics.ECONFLICT {
		t.Errorf("snapshot after shredding and restart: %v, want ECONFLICT", err)
	}
	// A copy of the event files taken before shredding, without the KEYS file
	// that was destroyed, cannot be read even with the master key.
	if err := os.Remove(filepath.Join(backup, "t1", "KEYS")); err != nil {
		t.Fatal(err)
	}
	b := openEncrypted(t, backup, 100)
	defer b.Close()
	if _, err := b.Snapshot(ctx, "t1", retail); err == nil {
		t.Error("the files of a shredded tenant opened")
	}
}

// TestRotationDuringAppendsLosesNothing rotates keys while writers append,
// then re-encrypts, restarts and checks every row once: no frame is left under
// a retired key.
func TestRotationDuringAppendsLosesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openEncrypted(t, dir, 200)
	recs := batches(0, 40, 7)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(recs); i += 4 {
				if _, err := s.Append(ctx, "t1", retail, privalytics.Batch{Record: recs[i], IdempotencyKey: fmt.Sprintf("k%d", i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for range 3 {
		if err := s.RotateKey(ctx, "t1", retail); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if err := s.Compact(ctx, "t1", retail); err != nil {
		t.Fatal(err)
	}
	want := tableOf(t, recs)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openEncrypted(t, dir, 200)
	defer s.Close()
	if diff := cmp.Diff(want, snapshotTable(t, s)); diff != "" {
		t.Errorf("after rotations during appends and a restart (-want +got):\n%s", diff)
	}
}
