package he

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/privalytics/privalytics"
)

// The owner's files beside the secret key: the decryption counter (this file)
// and the release ledger (ledger.go). Both are read and written under an
// exclusive lock on <secret key>.lock, so two `he decrypt` runs at once cannot
// both spend the last decryption or the last ε.

// CounterPath is the decryption counter's file for a secret key file.
func CounterPath(secretKey string) string { return secretKey + ".decryptions.json" }

// lockOwner takes the owner's lock for a secret key file; unlock releases it.
func lockOwner(secretKey string) (unlock func(), err error) {
	f, err := os.OpenFile(secretKey+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("he: lock the owner's files: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("he: lock the owner's files: %w", err)
	}
	return func() { f.Close() }, nil // closing drops the flock
}

// DecryptCounted decrypts under the persisted per-result decryption counts of
// the secret key file: it locks the owner's files, loads the counts, decrypts
// (refusing past the preset's MaxDecryptions), and writes the new counts,
// synced, before the plaintext is returned. The counter survives restarts, so
// the limit the flooding was sized for holds across runs.
func DecryptCounted(secretKey string, keys *OwnerKeys, res *Result) (*Plain, error) {
	unlock, err := lockOwner(secretKey)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return decryptCounted(CounterPath(secretKey), keys, res)
}

func decryptCounted(path string, keys *OwnerKeys, res *Result) (*Plain, error) {
	dec, err := NewDecryptor(keys)
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &counts); err != nil {
			return nil, privalytics.Errorf(privalytics.EINVALID, "decryption counter %s is corrupt (%v); restore it from a backup — deleting it would allow more decryptions than the flooding was sized for", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := dec.LoadCounts(counts); err != nil {
		return nil, err
	}
	plain, err := dec.Decrypt(res)
	if err != nil {
		return nil, err
	}
	b, _ := json.MarshalIndent(dec.Counts(), "", "  ")
	if err := replaceFile(path, b); err != nil {
		return nil, err
	}
	return plain, nil
}

// replaceFile writes b to path atomically (temporary file, fsync, rename,
// fsync of the directory), mode 0600.
func replaceFile(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
