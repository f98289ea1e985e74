package keyring

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMasterKeyFileAndWrapping(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keys", "master.key")
	mk, created, err := LoadOrCreateMasterKey(path)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	wrapped, err := mk.Wrap([]byte("secret"), []byte("tenant:a"))
	if err != nil {
		t.Fatal(err)
	}
	again, created, err := LoadOrCreateMasterKey(path)
	if err != nil || created {
		t.Fatalf("load: %v %v", created, err)
	}
	if pt, err := again.Unwrap(wrapped, []byte("tenant:a")); err != nil || string(pt) != "secret" {
		t.Errorf("unwrap after reload: %q %v", pt, err)
	}
	if _, err := again.Unwrap(wrapped, []byte("tenant:b")); err == nil {
		t.Error("unwrap with another tenant's associated data succeeded")
	}
	tampered := bytes.Clone(wrapped)
	tampered[len(tampered)-1] ^= 1
	if _, err := again.Unwrap(tampered, []byte("tenant:a")); err == nil {
		t.Error("unwrap of a tampered key succeeded")
	}
	os.Chmod(path, 0o644)
	if _, _, err := LoadOrCreateMasterKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a world-readable key file: %v, want a refusal naming chmod 600", err)
	}
	for _, bad := range []string{"not base64!", "c2hvcnQ="} {
		if _, err := MasterKeyFromEnv(bad); err == nil {
			t.Errorf("MasterKeyFromEnv(%q) accepted", bad)
		}
	}
}

func TestAPIKeyTokens(t *testing.T) {
	t.Parallel()
	id, token, hash, err := NewAPIKeyToken()
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := ParseAPIKeyToken(token); !ok || got != id {
		t.Errorf("parse(%q) = %q %v, want %q", token, got, ok, id)
	}
	if want := sha256.Sum256([]byte(token)); !bytes.Equal(hash, want[:]) {
		t.Error("hash is not SHA-256 of the token")
	}
	_, token2, _, _ := NewAPIKeyToken()
	if token == token2 {
		t.Error("two tokens are equal")
	}
	for _, bad := range []string{"", "pvk_", "pvk_ABCDEF012345_" + strings.Repeat("A", 43), token[:len(token)-1], "xyz" + token[3:]} {
		if _, ok := ParseAPIKeyToken(bad); ok {
			t.Errorf("parsed malformed token %q", bad)
		}
	}
}
