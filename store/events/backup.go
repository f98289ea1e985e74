package events

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// BackupReport says what Backup copied.
type BackupReport struct {
	Tenants, Files int
	Bytes          int64
	Retries        int
}

// Backup copies every tenant's files under dir into dest while a server may
// be writing them. A tenant's copy is what a crash at one moment would have
// left: its MANIFEST (and KEYS), the segments it names (checked against their
// checksums), and its logs above sealed_through, each up to its last whole
// frame. If the MANIFEST, KEYS or the set of logs changed while copying (a
// seal, compaction, erasure or rotation ran), that tenant is copied again.
func Backup(dir, dest string) (BackupReport, error) {
	var rep BackupReport
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return rep, nil
	} else if err != nil {
		return rep, err
	}
	for _, e := range ents {
		if !e.IsDir() || !tenantIDPattern.MatchString(e.Name()) {
			continue
		}
		files, retries, err := snapshotTenant(filepath.Join(dir, e.Name()))
		rep.Retries += retries
		if err != nil {
			return rep, fmt.Errorf("events: back up tenant %s: %w", e.Name(), err)
		}
		for _, name := range slices.Sorted(maps.Keys(files)) {
			p := filepath.Join(dest, e.Name(), name)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				return rep, err
			}
			if err := writeFileSync(p, files[name]); err != nil {
				return rep, err
			}
			rep.Files++
			rep.Bytes += int64(len(files[name]))
		}
		for _, sub := range []string{"wal", "segments"} {
			if err := os.MkdirAll(filepath.Join(dest, e.Name(), sub), 0o700); err != nil {
				return rep, err
			}
		}
		rep.Tenants++
	}
	return rep, nil
}

// snapshotTenant reads one tenant's files as they stood at one moment.
func snapshotTenant(tdir string) (map[string][]byte, int, error) {
	const tries = 50
	for try := range tries {
		files, ok, err := readTenantOnce(tdir)
		if err != nil {
			return nil, try, err
		}
		if ok {
			return files, try, nil
		}
	}
	return nil, tries, fmt.Errorf("its files kept changing over %d attempts; retry when it is less busy", tries)
}

func readTenantOnce(tdir string) (map[string][]byte, bool, error) {
	readOpt := func(name string) ([]byte, error) {
		raw, err := os.ReadFile(filepath.Join(tdir, name))
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return raw, err
	}
	files := map[string][]byte{}
	man1, err := readOpt("MANIFEST")
	if err != nil {
		return nil, false, err
	}
	keys1, err := readOpt("KEYS")
	if err != nil {
		return nil, false, err
	}
	logs1, err := logFiles(filepath.Join(tdir, "wal"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	var m manifest
	if man1 != nil {
		if err := json.Unmarshal(man1, &m); err != nil {
			return nil, false, fmt.Errorf("MANIFEST: %w (run privalytics fsck)", err)
		}
		files["MANIFEST"] = man1
	}
	if keys1 != nil {
		files["KEYS"] = keys1
	}
	if marker, err := readOpt(markerFile); err != nil {
		return nil, false, err
	} else if marker != nil {
		files[markerFile] = marker
	}
	for _, seg := range m.Segments {
		raw, err := os.ReadFile(filepath.Join(tdir, "segments", seg.File))
		if errors.Is(err, os.ErrNotExist) {
			return nil, false, nil // a compaction dropped it meanwhile: the MANIFEST changed
		} else if err != nil {
			return nil, false, err
		}
		if _, err := seg.match(raw); err != nil {
			return nil, false, nil // replaced meanwhile by a compaction
		}
		files[filepath.Join("segments", seg.File)] = raw
	}
	for _, seq := range logs1 {
		if seq <= m.SealedThrough {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(tdir, "wal", logName(seq)))
		if errors.Is(err, os.ErrNotExist) {
			return nil, false, nil // sealed and removed meanwhile
		} else if err != nil {
			return nil, false, err
		}
		files[filepath.Join("wal", logName(seq))] = raw[:wholeFrames(raw)]
	}
	man2, err := readOpt("MANIFEST")
	if err != nil {
		return nil, false, err
	}
	keys2, err := readOpt("KEYS")
	if err != nil {
		return nil, false, err
	}
	logs2, err := logFiles(filepath.Join(tdir, "wal"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	// Only the newest log grows while the set of logs stays the same: every
	// other one was closed before the first read, so it was copied whole.
	if !bytes.Equal(man1, man2) || !bytes.Equal(keys1, keys2) || !slices.Equal(logs1, logs2) {
		return nil, false, nil
	}
	return files, true, nil
}

// wholeFrames returns the length of the longest prefix of a log that is whole
// frames (magic, length and CRC checked; the payload is not decrypted).
func wholeFrames(data []byte) int {
	off := 0
	for len(data)-off >= frameHeader {
		if !bytes.Equal(data[off:off+4], frameMagic[:]) && !bytes.Equal(data[off:off+4], encFrameMagic[:]) {
			break
		}
		n := int(binary.LittleEndian.Uint32(data[off+4:]))
		if n > maxFrame || len(data)-off-frameHeader < n || crcOf(data[off+frameHeader:off+frameHeader+n]) != binary.LittleEndian.Uint32(data[off+8:]) {
			break
		}
		off += frameHeader + n
	}
	return off
}
