// Package keyring holds the server's secrets: the master key that wraps every
// tenant's keys (AES-256-GCM, with the tenant bound in as associated data so a
// wrapped key cannot be moved to another tenant), and the format of API key
// tokens, of which the server keeps only a SHA-256.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// MasterKey wraps and unwraps tenants' keys. It never leaves the server.
type MasterKey struct {
	aead cipher.AEAD
}

func newMasterKey(key []byte) (*MasterKey, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("master key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &MasterKey{aead: aead}, nil
}

// LoadOrCreateMasterKey reads the key file, or creates it (0600, in a 0700
// directory) with a new random key. A key file that group or others may read or
// write is refused: the key protects every tenant's pseudonymisation secret.
// An existing file is never overwritten, since every wrapped tenant key would
// be lost with it; when two processes start at once, both end up with the key
// the first one wrote.
func LoadOrCreateMasterKey(path string) (mk *MasterKey, created bool, err error) {
	mk, err = loadMasterKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return mk, false, err
	}
	switch err := createMasterKey(path); {
	case errors.Is(err, fs.ErrExist):
		// Another process created it between our read and our create.
	case err != nil:
		return nil, false, fmt.Errorf("master key file %s: %w", path, err)
	default:
		created = true
	}
	mk, err = loadMasterKey(path)
	return mk, created && err == nil, err
}

// maxKeyFile bounds what loadMasterKey reads: a key file is 45 bytes.
const maxKeyFile = 4096

func loadMasterKey(path string) (*MasterKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // fs.ErrNotExist reaches the caller unwrapped
	}
	defer f.Close()
	// The mode of the file we opened, not of whatever the path names later.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("master key file %s is not a regular file (%v)", path, fi.Mode().Type())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("master key file %s has mode %v, so other users can read or change it; run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxKeyFile))
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	mk, err := MasterKeyFromEnv(string(raw))
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	return mk, nil
}

// createMasterKey writes a new key to a temporary file and links it into place,
// so that a crash never leaves a half-written key file and an existing one is
// never replaced (fs.ErrExist then).
func createMasterKey(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	key, err := NewDataKey()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".master-key-*") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return err
	}
	// Make the new directory entry durable too.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// MasterKeyFromEnv parses a master key given as base64 (standard encoding) of
// 32 bytes, surrounding white space ignored. Errors never repeat the value.
func MasterKeyFromEnv(value string) (*MasterKey, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return nil, errors.New("master key is empty; set it to base64 of 32 random bytes (e.g. `head -c32 /dev/urandom | base64`)")
	}
	key, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		return nil, errors.New("master key is not standard base64; set it to base64 of 32 random bytes (e.g. `head -c32 /dev/urandom | base64`)")
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("master key decodes to %d bytes, it must be 32 (e.g. `head -c32 /dev/urandom | base64`)", len(key))
	}
	return newMasterKey(key)
}

// Wrap encrypts plaintext bound to associatedData (e.g. "tenant:<id>", so a
// wrapped key cannot be moved to another tenant). Output: nonce || ciphertext.
func (mk *MasterKey) Wrap(plaintext, associatedData []byte) ([]byte, error) {
	nonce := make([]byte, mk.aead.NonceSize(), mk.aead.NonceSize()+len(plaintext)+mk.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return mk.aead.Seal(nonce, nonce, plaintext, associatedData), nil
}

// Unwrap reverses Wrap; it fails if the bytes or the associated data were altered.
func (mk *MasterKey) Unwrap(wrapped, associatedData []byte) ([]byte, error) {
	ns := mk.aead.NonceSize()
	if len(wrapped) < ns+mk.aead.Overhead() {
		return nil, errors.New("wrapped key is too short")
	}
	pt, err := mk.aead.Open(nil, wrapped[:ns], wrapped[ns:], associatedData)
	if err != nil {
		return nil, errors.New("wrapped key does not authenticate under this master key")
	}
	return pt, nil
}

// NewDataKey returns 32 random bytes.
func NewDataKey() ([]byte, error) {
	k := make([]byte, 32)
	_, err := rand.Read(k)
	return k, err
}

const tokenPrefix = "pvk_"

// NewAPIKeyToken returns a new key: its public ID (12 hex digits), the token the
// caller presents ("pvk_<id>_<43 chars of base64url secret>") and the SHA-256 of
// the token, which is all the server stores. The secret has 256 bits of entropy,
// so a fast hash suffices.
func NewAPIKeyToken() (id, token string, hash []byte, err error) {
	var idb [6]byte
	var secret [32]byte
	if _, err = rand.Read(idb[:]); err != nil {
		return
	}
	if _, err = rand.Read(secret[:]); err != nil {
		return
	}
	id = hex.EncodeToString(idb[:])
	token = tokenPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(secret[:])
	return id, token, HashAPIKeyToken(token), nil
}

// ParseAPIKeyToken returns the ID of a well-formed token.
func ParseAPIKeyToken(token string) (id string, ok bool) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok || len(rest) != 12+1+43 || rest[12] != '_' {
		return "", false
	}
	id = rest[:12]
	if _, err := hex.DecodeString(id); err != nil || strings.ToLower(id) != id {
		return "", false
	}
	// The decoder skips \r and \n, so check the alphabet first; Strict then
	// refuses a last character with stray low bits. A token is either spelt
	// exactly as issued or malformed.
	secret := rest[13:]
	if strings.IndexFunc(secret, func(r rune) bool {
		return !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_')
	}) >= 0 {
		return "", false
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(secret); err != nil {
		return "", false
	}
	return id, true
}

// HashAPIKeyToken is what the server stores and compares.
func HashAPIKeyToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}
