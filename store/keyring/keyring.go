// Package keyring holds the server's secrets: the master key that wraps every
// tenant's keys (AES-256-GCM), and the format of API key tokens.
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
// directory) with a new random key. A key file that group or others can read is
// refused: the key protects every tenant's pseudonymisation secret.
func LoadOrCreateMasterKey(path string) (mk *MasterKey, created bool, err error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, false, err
		}
		key, err := NewDataKey()
		if err != nil {
			return nil, false, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, false, err
		}
		if _, err := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
			f.Close()
			return nil, false, err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, false, err
		}
		if err := f.Close(); err != nil {
			return nil, false, err
		}
		mk, err := newMasterKey(key)
		return mk, true, err
	} else if err != nil {
		return nil, false, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, false, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, false, fmt.Errorf("master key file %s has mode %v: others can read it; run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	mk, err = MasterKeyFromEnv(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, false, fmt.Errorf("master key file %s: %w", path, err)
	}
	return mk, false, nil
}

// MasterKeyFromEnv parses a base64 (standard encoding) 32-byte key.
func MasterKeyFromEnv(value string) (*MasterKey, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(value))
	if err != nil {
		return nil, errors.New("master key must be base64 of 32 random bytes (e.g. `head -c32 /dev/urandom | base64`)")
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
	if _, err := base64.RawURLEncoding.DecodeString(rest[13:]); err != nil {
		return "", false
	}
	return id, true
}

// HashAPIKeyToken is what the server stores and compares.
func HashAPIKeyToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}
