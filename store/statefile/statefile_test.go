package statefile

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/store/keyring"
)

func testKey(t testing.TB) *keyring.MasterKey {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	mk, err := keyring.MasterKeyFromEnv(base64.StdEncoding.EncodeToString(k))
	if err != nil {
		t.Fatal(err)
	}
	return mk
}

func TestRoundTripPlainAndSealed(t *testing.T) {
	data := make([]byte, 2*ChunkSize+12345) // three frames
	_, _ = rand.Read(data)
	for _, s := range []Sealer{nil, testKey(t)} {
		p := filepath.Join(t.TempDir(), "blob")
		if err := WriteFile(p, "test-blob", s, data); err != nil {
			t.Fatal(err)
		}
		got, err := ReadFile(p, "test-blob", s)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("sealed=%v: read back %d bytes, wrote %d (or different)", s != nil, len(got), len(data))
		}
		raw, _ := os.ReadFile(p)
		if s != nil && bytes.Contains(raw, data[:64]) {
			t.Error("a sealed file holds the plaintext")
		}
		// No temporary file is left beside it.
		ents, _ := os.ReadDir(filepath.Dir(p))
		if len(ents) != 1 {
			t.Errorf("directory holds %d entries, want the file alone", len(ents))
		}
	}
	// Empty payload.
	p := filepath.Join(t.TempDir(), "empty")
	if err := WriteFile(p, "k", nil, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadFile(p, "k", nil); err != nil || len(got) != 0 {
		t.Fatalf("empty: %q, %v", got, err)
	}
}

// Every way a file can be wrong is a *Damaged naming it.
func TestDamageIsRefusedNamingTheFile(t *testing.T) {
	key := testKey(t)
	data := bytes.Repeat([]byte("state "), ChunkSize/3)
	cases := []struct {
		name   string
		sealer Sealer
		read   Sealer
		kind   string
		mutate func(path string, raw []byte) []byte
		want   string
	}{
		{"flip plain", nil, nil, "k", func(_ string, b []byte) []byte { b[len(b)/2] ^= 1; return b }, "checksum"},
		{"flip sealed", key, key, "k", func(_ string, b []byte) []byte { b[len(b)/2] ^= 1; return b }, "authenticate"},
		{"truncate", nil, nil, "k", func(_ string, b []byte) []byte { return b[:len(b)-10] }, "truncated"},
		{"cut at frame", nil, nil, "k", func(_ string, b []byte) []byte { return b[:7+1+ChunkSize+4+5] }, "without its last frame"},
		{"trailing", nil, nil, "k", func(_ string, b []byte) []byte { return append(b, 0) }, "after its last frame"},
		{"newer", nil, nil, "k", func(_ string, b []byte) []byte { b[4] = Version + 1; return b }, "newer Privalytics"},
		{"magic", nil, nil, "k", func(_ string, b []byte) []byte { b[0] = 'X'; return b }, "bad magic"},
		{"no key", key, nil, "k", func(_ string, b []byte) []byte { return b }, "master key"},
		{"wrong kind", nil, nil, "other", func(_ string, b []byte) []byte { return b }, "holds"},
		{"empty", nil, nil, "k", func(_ string, b []byte) []byte { return nil }, "header"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "f")
			if err := WriteFile(p, "k", c.sealer, data); err != nil {
				t.Fatal(err)
			}
			raw, _ := os.ReadFile(p)
			if err := os.WriteFile(p, c.mutate(p, raw), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := ReadFile(p, c.kind, c.read)
			var d *Damaged
			if !errors.As(err, &d) || d.File != p || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("got %v, want a *Damaged naming %s and saying %q", err, p, c.want)
			}
		})
	}
}

// A sealed file renamed over another is refused: the name is bound in.
func TestSealedFileCannotBeRenamed(t *testing.T) {
	key := testKey(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := WriteFile(a, "k", key, []byte("alpha")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(a, b); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(b, "k", key); err == nil {
		t.Fatal("a sealed file read under another name")
	}
}

func TestMissingFileIsNotExist(t *testing.T) {
	_, err := ReadFile(filepath.Join(t.TempDir(), "nope"), "k", nil)
	if !IsNotExist(err) {
		t.Fatalf("got %v, want not-exist", err)
	}
}

func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	for i, s := range []Sealer{nil} {
		p := filepath.Join(dir, "seed"+string(rune('0'+i)))
		_ = WriteFile(p, "k", s, []byte("some state"))
		raw, _ := os.ReadFile(p)
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(p, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadFile(p, "k", nil)
		if err != nil {
			var d *Damaged
			if !errors.As(err, &d) {
				t.Fatalf("error %v is not a *Damaged", err)
			}
			return
		}
		// What reads back must re-encode to the same bytes.
		q := filepath.Join(t.TempDir(), "g")
		if err := WriteFile(q, "k", nil, got); err != nil {
			t.Fatal(err)
		}
		again, _ := os.ReadFile(q)
		if len(got) < ChunkSize && !bytes.Equal(again, raw) {
			t.Fatalf("a file that reads back is not what the writer makes of its content")
		}
	})
}

func TestStoreErrorAndRemoveTemps(t *testing.T) {
	if got := privalytics.ErrorCode(StoreError("the table", &os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC})); got != privalytics.ESTORAGEFULL {
		t.Errorf("ENOSPC maps to %s, want %s", got, privalytics.ESTORAGEFULL)
	}
	if got := privalytics.ErrorCode(StoreError("the table", errors.New("boom"))); got != privalytics.EINTERNAL {
		t.Errorf("another error maps to %s, want %s", got, privalytics.EINTERNAL)
	}
	dir := t.TempDir()
	if err := WriteFile(filepath.Join(dir, "keep"), "k", nil, []byte("x")); err != nil {
		t.Fatal(err)
	}
	w, err := Create(filepath.Join(dir, "cut"), "k", nil) // a write a crash cut short
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte("partial"))
	_ = w.bw.Flush()
	if err := RemoveTemps(dir); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "keep" {
		t.Fatalf("after RemoveTemps the directory holds %v, want only keep", ents)
	}
}
