package keyring

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testInsecureSeededKey(t testing.TB, seed string) *MasterKey {
	t.Helper()
	mk, err := MasterKeyFromEnv(base64.StdEncoding.EncodeToString([]byte((seed + strings.Repeat("!", 32))[:32])))
	if err != nil {
		t.Fatal(err)
	}
	return mk
}

// The installation file round-trips, proves the key it was made with, and
// refuses another key and a newer format.
func TestInstallationChecksTheMasterKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if in, err := ReadInstallation(dir); in != nil || err != nil {
		t.Fatalf("no file: got %v, %v; want nil, nil", in, err)
	}
	mk := testInsecureSeededKey(t, "testInsecureOne")
	made, err := CreateInstallation(dir, mk)
	if err != nil {
		t.Fatal(err)
	}
	in, err := ReadInstallation(dir)
	if err != nil || in.ID != made.ID {
		t.Fatalf("read back %v, %v; want ID %s", in, err, made.ID)
	}
	if err := in.CheckKey(mk); err != nil {
		t.Errorf("the original key: %v", err)
	}
	if err := in.CheckKey(testInsecureSeededKey(t, "testInsecureTwo")); err == nil || !strings.Contains(err.Error(), "not the master key") {
		t.Errorf("another key: %v, want a refusal", err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, InstallationFile))
	os.WriteFile(filepath.Join(dir, InstallationFile), []byte(strings.Replace(string(raw), `"version": 1`, `"version": 2`, 1)), 0o600)
	if _, err := ReadInstallation(dir); err == nil || !strings.Contains(err.Error(), "newer build") {
		t.Errorf("a newer format: %v, want a refusal", err)
	}
}

// FuzzReadInstallation: arbitrary file contents never panic, and a file that
// reads never passes the key check by accident.
func FuzzReadInstallation(f *testing.F) {
	f.Add([]byte(`{"version": 1, "id": "ab", "created": "2026-12-06T00:00:00Z", "key_check": "AAAA"}`))
	f.Add([]byte(`{"version": 9}`))
	f.Add([]byte(`[]`))
	mk := testInsecureSeededKey(f, "testInsecureFuzz")
	f.Fuzz(func(t *testing.T, raw []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, InstallationFile), raw, 0o600); err != nil {
			t.Fatal(err)
		}
		in, err := ReadInstallation(dir)
		if err != nil || in == nil {
			return
		}
		if in.CheckKey(mk) == nil {
			t.Fatalf("an arbitrary file passed the key check: %q", raw)
		}
	})
}
