package keyring

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// InstallationFile is the name, in the data directory, of the file that says
// the directory was set up: its identity and a check value of its master key.
// Start-up uses it to refuse a master key or a metadata database silently
// recreated over existing data (a new key cannot read any tenant's keys; a new
// database resets every privacy budget).
const InstallationFile = "INSTALLATION"

// installationVersion is the format this build writes and reads.
const installationVersion = 1

// Installation is one data directory's identity.
type Installation struct {
	Version int       `json:"version"`
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	// KeyCheck is a fixed text wrapped by the master key: unwrapping it proves
	// the key given at start is the one the data was written with.
	KeyCheck []byte `json:"key_check"`
}

func keyCheckAD(id string) []byte { return []byte("installation:" + id) }

const keyCheckText = "privalytics master key check"

// ReadInstallation reads dataDir's installation file; (nil, nil) when there is none.
func ReadInstallation(dataDir string) (*Installation, error) {
	path := filepath.Join(dataDir, InstallationFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var in Installation
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, fmt.Errorf("%s cannot be read (%v); restore it from a backup", path, err)
	}
	if in.Version > installationVersion {
		return nil, fmt.Errorf("%s has format version %d, written by a newer build; this build reads version %d: run the newer build", path, in.Version, installationVersion)
	}
	return &in, nil
}

// CreateInstallation writes a new installation file for dataDir (temp file,
// fsync, rename, fsync dir) with a check value of mk.
func CreateInstallation(dataDir string, mk *MasterKey) (*Installation, error) {
	id, err := NewDataKey()
	if err != nil {
		return nil, err
	}
	in := &Installation{Version: installationVersion, ID: hex.EncodeToString(id[:8]), Created: time.Now().UTC().Truncate(time.Second)}
	if in.KeyCheck, err = mk.Wrap([]byte(keyCheckText), keyCheckAD(in.ID)); err != nil {
		return nil, err
	}
	raw, err := json.MarshalIndent(in, "", " ")
	if err != nil {
		return nil, err
	}
	tmp := filepath.Join(dataDir, InstallationFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	_, werr := f.Write(raw)
	serr := f.Sync()
	if err := errors.Join(werr, serr, f.Close()); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, filepath.Join(dataDir, InstallationFile)); err != nil {
		return nil, err
	}
	if d, err := os.Open(dataDir); err == nil {
		d.Sync()
		d.Close()
	}
	return in, nil
}

// CheckKey reports whether mk is the master key the installation was set up with.
func (in *Installation) CheckKey(mk *MasterKey) error {
	pt, err := mk.Unwrap(in.KeyCheck, keyCheckAD(in.ID))
	if err != nil || string(pt) != keyCheckText {
		return errors.New("this is not the master key the data directory was set up with: give the original key (PRIVALYTICS_MASTER_KEY or --master-key-file), or restore its key file from a backup")
	}
	return nil
}
