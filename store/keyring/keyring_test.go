package keyring

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testInsecureMasterKey is a fixed key for tests that need the same key on every
// run (fuzzing). Never use it for anything else.
const testInsecureMasterKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

func testKey(t testing.TB) *MasterKey {
	t.Helper()
	mk, err := MasterKeyFromEnv(testInsecureMasterKey)
	if err != nil {
		t.Fatal(err)
	}
	return mk
}

func TestWrapRoundTrip(t *testing.T) {
	t.Parallel()
	mk := testKey(t)
	tests := []struct {
		name          string
		plaintext, ad []byte
	}{
		{"a data key", bytes.Repeat([]byte{0xab}, 32), []byte("tenant:shop")},
		{"empty plaintext", nil, []byte("tenant:shop")},
		{"no associated data", []byte("secret"), nil},
		{"large", bytes.Repeat([]byte("x"), 10_000), []byte("tenant:a")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w1, err := mk.Wrap(tt.plaintext, tt.ad)
			if err != nil {
				t.Fatal(err)
			}
			if want := 12 + len(tt.plaintext) + 16; len(w1) != want {
				t.Errorf("wrapped length %d, want nonce 12 + %d + tag 16 = %d", len(w1), len(tt.plaintext), want)
			}
			w2, err := mk.Wrap(tt.plaintext, tt.ad)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(w1, w2) {
				t.Error("two wraps of the same plaintext are equal; the nonce must be fresh")
			}
			for _, w := range [][]byte{w1, w2} {
				got, err := mk.Unwrap(w, tt.ad)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, tt.plaintext) {
					t.Errorf("unwrap = %x, want %x", got, tt.plaintext)
				}
			}
		})
	}
}

func TestUnwrapDetectsTampering(t *testing.T) {
	t.Parallel()
	mk := testKey(t)
	ad := []byte("tenant:shop")
	wrapped, err := mk.Wrap([]byte("the tenant's HMAC key"), ad)
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := LoadOrCreateMasterKey(filepath.Join(t.TempDir(), "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(wrapped)
		b[i] ^= 0x01
		return b
	}
	tests := []struct {
		name    string
		key     *MasterKey
		wrapped []byte
		ad      []byte
	}{
		{"flipped nonce byte", mk, flip(0), ad},
		{"flipped ciphertext byte", mk, flip(12), ad},
		{"flipped tag byte", mk, flip(len(wrapped) - 1), ad},
		{"another tenant's associated data", mk, wrapped, []byte("tenant:shop2")},
		{"no associated data", mk, wrapped, nil},
		{"truncated by one byte", mk, wrapped[:len(wrapped)-1], ad},
		{"shorter than nonce and tag", mk, wrapped[:27], ad},
		{"empty", mk, nil, ad},
		{"another master key", other, wrapped, ad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if pt, err := tt.key.Unwrap(tt.wrapped, tt.ad); err == nil {
				t.Errorf("unwrap succeeded with %q", pt)
			}
		})
	}
	// Every single-bit change anywhere is caught, not only at the positions above.
	for i := range wrapped {
		if _, err := mk.Unwrap(flip(i), ad); err == nil {
			t.Errorf("a flipped bit in byte %d went unnoticed", i)
		}
	}
}

func TestLoadOrCreateMasterKey(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data", "keys")
	path := filepath.Join(dir, "master.key")
	mk, created, err := LoadOrCreateMasterKey(path)
	if err != nil || !created {
		t.Fatalf("first call: created=%v err=%v, want a new key", created, err)
	}
	for _, f := range []struct {
		path string
		want os.FileMode
	}{{path, 0o600}, {dir, 0o700}, {filepath.Dir(dir), 0o700}} {
		if fi, err := os.Stat(f.path); err != nil || fi.Mode().Perm() != f.want {
			t.Errorf("%s: mode %v (%v), want %v", f.path, fi.Mode().Perm(), err, f.want)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if key, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(string(raw), "\n")); err != nil || len(key) != 32 {
		t.Errorf("key file holds %q: want base64 of 32 bytes and a newline", raw)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the key directory holds %d entries, want only master.key (no temporary file left)", len(entries))
	}

	wrapped, err := mk.Wrap([]byte("secret"), []byte("tenant:a"))
	if err != nil {
		t.Fatal(err)
	}
	again, created, err := LoadOrCreateMasterKey(path)
	if err != nil || created {
		t.Fatalf("second call: created=%v err=%v, want the existing key", created, err)
	}
	if pt, err := again.Unwrap(wrapped, []byte("tenant:a")); err != nil || string(pt) != "secret" {
		t.Errorf("unwrap with the reloaded key: %q %v", pt, err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, raw) {
		t.Error("loading rewrote the key file")
	}
}

// TestKeyFilePermissions: a key file others may read or write is refused with a
// message saying how to fix it; owner-only modes are accepted.
func TestKeyFilePermissions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true},
		{0o400, true},
		{0o644, false},
		{0o640, false},
		{0o604, false},
		{0o620, false},
		{0o602, false},
		{0o666, false},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "master.key")
			if _, _, err := LoadOrCreateMasterKey(path); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(path)
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, created, err := LoadOrCreateMasterKey(path)
			switch {
			case tt.ok && err != nil:
				t.Errorf("mode %v refused: %v", tt.mode, err)
			case !tt.ok && (err == nil || !strings.Contains(err.Error(), "chmod 600")):
				t.Errorf("mode %v: %v, want a refusal naming chmod 600", tt.mode, err)
			}
			if after, _ := os.ReadFile(path); created || !bytes.Equal(before, after) {
				t.Errorf("the existing key file was replaced (created=%v)", created)
			}
		})
	}
}

// TestBadKeyFiles: a key file that cannot be used is reported, never replaced,
// since every tenant's wrapped key depends on it.
func TestBadKeyFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{"empty", "", "empty"},
		{"not base64", "this is not a key\n", "base64"},
		{"16 bytes", base64.StdEncoding.EncodeToString(make([]byte, 16)), "16 bytes"},
		{"33 bytes", base64.StdEncoding.EncodeToString(make([]byte, 33)), "33 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "master.key")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := LoadOrCreateMasterKey(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("got %v, want an error naming the file and %q", err, tt.want)
			}
			if after, _ := os.ReadFile(path); string(after) != tt.content {
				t.Errorf("the bad key file was rewritten to %q", after)
			}
		})
	}
	t.Run("a directory", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "master.key")
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
		if _, _, err := LoadOrCreateMasterKey(path); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("got %v, want a refusal of a directory", err)
		}
	})
}

// TestConcurrentCreateAgrees: processes starting together on an empty data
// directory all end up with one key; exactly one of them created it.
func TestConcurrentCreateAgrees(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "master.key")
	const n = 8
	keys := make([]*MasterKey, n)
	created := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var err error
			if keys[i], created[i], err = LoadOrCreateMasterKey(path); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	creators := 0
	for _, c := range created {
		if c {
			creators++
		}
	}
	if creators != 1 {
		t.Errorf("%d callers report creating the key, want 1", creators)
	}
	wrapped, err := keys[0].Wrap([]byte("k"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys[1:] {
		if _, err := k.Unwrap(wrapped, nil); err != nil {
			t.Errorf("caller %d got a different key", i+1)
		}
	}
}

func TestMasterKeyFromEnv(t *testing.T) {
	t.Parallel()
	key32 := bytes.Repeat([]byte{0xfb}, 32) // base64 of it has '+' and '/'
	tests := []struct {
		name, value string
		wantErr     string // "" for success
	}{
		{"standard base64", base64.StdEncoding.EncodeToString(key32), ""},
		{"with a trailing newline", base64.StdEncoding.EncodeToString(key32) + "\n", ""},
		{"empty", "", "empty"},
		{"only spaces", "  \n", "empty"},
		{"not base64", "not base64!", "base64"},
		{"URL-safe base64", base64.URLEncoding.EncodeToString(key32), "base64"},
		{"unpadded", base64.RawStdEncoding.EncodeToString(key32), "base64"},
		{"16 bytes", base64.StdEncoding.EncodeToString(key32[:16]), "16 bytes"},
		{"64 bytes", base64.StdEncoding.EncodeToString(append(key32, key32...)), "64 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mk, err := MasterKeyFromEnv(tt.value)
			if tt.wantErr == "" {
				if err != nil || mk == nil {
					t.Fatalf("got %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error about %q", err, tt.wantErr)
			}
			if v := strings.TrimSpace(tt.value); v != "" && strings.Contains(err.Error(), v) {
				t.Errorf("the error %q repeats the secret value", err)
			}
		})
	}
}

func TestNewDataKey(t *testing.T) {
	t.Parallel()
	a, err := NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 32 || len(b) != 32 || bytes.Equal(a, b) {
		t.Errorf("data keys %x and %x: want two different 32-byte keys", a, b)
	}
}

var tokenFormat = regexp.MustCompile(`^pvk_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$`)

func TestNewAPIKeyToken(t *testing.T) {
	t.Parallel()
	// 1000 tokens: a repeated 48-bit ID has probability below 2e-9, a repeated
	// 256-bit secret far less; either would be a broken generator.
	const n = 1000
	ids, tokens := map[string]bool{}, map[string]bool{}
	for range n {
		id, token, hash, err := NewAPIKeyToken()
		if err != nil {
			t.Fatal(err)
		}
		m := tokenFormat.FindStringSubmatch(token)
		if m == nil || m[1] != id {
			t.Fatalf("token %q (id %q) does not match %v with that id", token, id, tokenFormat)
		}
		if got, ok := ParseAPIKeyToken(token); !ok || got != id {
			t.Fatalf("ParseAPIKeyToken(%q) = %q, %v; want %q, true", token, got, ok, id)
		}
		want := sha256.Sum256([]byte(token))
		if diff := cmp.Diff(want[:], hash); diff != "" {
			t.Fatalf("hash is not SHA-256 of the token (-want +got):\n%s", diff)
		}
		if !bytes.Equal(HashAPIKeyToken(token), hash) {
			t.Fatal("HashAPIKeyToken disagrees with the hash NewAPIKeyToken returned")
		}
		ids[id], tokens[token] = true, true
	}
	if len(ids) != n || len(tokens) != n {
		t.Errorf("%d distinct IDs and %d distinct tokens in %d, want all distinct", len(ids), len(tokens), n)
	}
}

func TestParseAPIKeyTokenRejects(t *testing.T) {
	t.Parallel()
	secret := strings.Repeat("A", 43)
	tests := []struct{ name, token string }{
		{"empty", ""},
		{"prefix only", "pvk_"},
		{"other prefix", "pvx_0123456789ab_" + secret},
		{"upper-case prefix", "PVK_0123456789ab_" + secret},
		{"upper-case ID", "pvk_0123456789AB_" + secret},
		{"ID not hex", "pvk_0123456789ag_" + secret},
		{"ID too short", "pvk_0123456789a_" + secret + "A"},
		{"missing separator", "pvk_0123456789abA" + secret},
		{"secret too short", "pvk_0123456789ab_" + secret[:42]},
		{"secret too long", "pvk_0123456789ab_" + secret + "A"},
		{"standard base64 secret", "pvk_0123456789ab_" + secret[:42] + "+"},
		{"padded secret", "pvk_0123456789ab_" + secret[:42] + "="},
		{"non-canonical last character", "pvk_0123456789ab_" + secret[:42] + "B"},
		{"surrounding space", " pvk_0123456789ab_" + secret[:42]},
		{"line breaks in the secret", "pvk_0123456789ab_" + secret[:41] + "\r\n"}, // the base64 decoder skips them
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if id, ok := ParseAPIKeyToken(tt.token); ok || id != "" {
				t.Errorf("ParseAPIKeyToken(%q) = %q, %v; want \"\", false", tt.token, id, ok)
			}
		})
	}
	if id, ok := ParseAPIKeyToken("pvk_0123456789ab_" + secret); !ok || id != "0123456789ab" {
		t.Errorf("a well-formed token was refused: %q %v", id, ok)
	}
}

// FuzzParseAPIKeyToken: whatever the input, a token is accepted only in the
// issued format, and then its ID is the 12 characters after the prefix.
func FuzzParseAPIKeyToken(f *testing.F) {
	f.Add("pvk_0123456789ab_" + strings.Repeat("A", 43))
	f.Add("pvk_0123456789ab_" + strings.Repeat("_", 42) + "w")
	f.Add("pvk_")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		id, ok := ParseAPIKeyToken(token)
		if !ok {
			if id != "" {
				t.Errorf("refused %q but returned ID %q", token, id)
			}
			return
		}
		if !tokenFormat.MatchString(token) || token[4:16] != id {
			t.Errorf("accepted %q with ID %q", token, id)
		}
		if secret, err := base64.RawURLEncoding.DecodeString(token[17:]); err != nil || base64.RawURLEncoding.EncodeToString(secret) != token[17:] {
			t.Errorf("accepted %q whose secret is not canonical base64url", token)
		}
	})
}

// FuzzUnwrap: Unwrap never panics, and accepts only what Wrap produced: any
// input it accepts must be a nonce, the ciphertext and a tag.
func FuzzUnwrap(f *testing.F) {
	mk := testKey(f)
	genuine, err := mk.Wrap([]byte("seed"), []byte("tenant:a"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(genuine, []byte("tenant:a"))
	f.Add(genuine[:27], []byte("tenant:a"))
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, wrapped, ad []byte) {
		pt, err := mk.Unwrap(wrapped, ad)
		if err != nil {
			if pt != nil {
				t.Errorf("error %v with plaintext %q", err, pt)
			}
			return
		}
		if len(pt) != len(wrapped)-28 {
			t.Errorf("unwrapped %d bytes from %d", len(pt), len(wrapped))
		}
		// Authenticity: the same bytes under other associated data fail.
		if _, err := mk.Unwrap(wrapped, append(bytes.Clone(ad), 'x')); err == nil {
			t.Error("accepted under two different associated data")
		}
	})
}
