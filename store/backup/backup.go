// Package backup copies a data directory while the server runs, and restores
// such a copy into an empty directory. Each part is copied consistently: the
// SQLite metadata database with VACUUM INTO (one transaction), each tenant's
// event files as they stood at one moment (retried if a seal, compaction or
// erasure changes the MANIFEST meanwhile; logs are append-only and copied up to
// their last whole frame), the audit log up to its last whole line, and the
// key files as they are. The parts are not from one single instant: a batch
// acknowledged while the backup runs may be in the events and not in the
// audit log, never the reverse of a crash's guarantees within one part.
//
// DataDir holds the directory's rules that start-up and the offline tools
// (fsck, repair, restore) share: what may be created next to what exists,
// the master key, and the checks and repairs of the files.
package backup

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // the driver store/sqlite uses

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/store/events"
)

// Files is what a backup copies besides the events.
type Files struct {
	DataDir       string
	MetaDB        string // the SQLite file; empty with PostgreSQL (back it up with pg_dump)
	AuditLog      string
	MasterKeyFile string // empty when the key comes from the environment
	Extra         []string
}

// Report says what a backup or restore copied.
type Report struct {
	Tenants  int
	Files    int
	Bytes    int64
	Retries  int // event copies started again because a tenant changed meanwhile
	Warnings []string
}

// Backup copies the data directory described by f into dest, which must not
// exist or be empty. The server may be running.
func Backup(ctx context.Context, f Files, dest string) (Report, error) {
	var rep Report
	if err := emptyDir(dest); err != nil {
		return rep, err
	}
	if f.MetaDB != "" {
		if err := vacuumInto(ctx, f.MetaDB, filepath.Join(dest, filepath.Base(f.MetaDB))); err != nil {
			return rep, fmt.Errorf("backup: metadata database %s: %w", f.MetaDB, err)
		}
		rep.Files++
	} else {
		rep.Warnings = append(rep.Warnings, "the metadata is in PostgreSQL: back it up with pg_dump at the same time")
	}
	evRep, err := events.Backup(filepath.Join(f.DataDir, "events"), filepath.Join(dest, "events"))
	if err != nil {
		return rep, fmt.Errorf("backup: %w", err)
	}
	rep.Tenants, rep.Retries = evRep.Tenants, evRep.Retries
	rep.Files += evRep.Files
	rep.Bytes += evRep.Bytes
	// state/ holds HE datasets, jobs and federations; models/ the released
	// models and fairness audits (learn/registry).
	for _, d := range []struct{ dir, what string }{{"state", "HE and federation state"}, {"models", "models and fairness audits"}} {
		n, files, err := copyState(filepath.Join(f.DataDir, d.dir), filepath.Join(dest, d.dir))
		if err != nil {
			return rep, fmt.Errorf("backup: %s: %w", d.what, err)
		}
		rep.Files, rep.Bytes = rep.Files+files, rep.Bytes+n
	}
	if f.AuditLog != "" {
		n, err := copyWholeLines(f.AuditLog, filepath.Join(dest, filepath.Base(f.AuditLog)))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return rep, fmt.Errorf("backup: audit log: %w", err)
		}
		rep.Files, rep.Bytes = rep.Files+1, rep.Bytes+n
	}
	if f.MasterKeyFile != "" {
		if rel, err := filepath.Rel(f.DataDir, f.MasterKeyFile); err == nil && !strings.HasPrefix(rel, "..") {
			f.Extra = append(f.Extra, f.MasterKeyFile)
		} else {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("the master key file %s is outside the data directory and is not in the backup: keep a copy of it apart", f.MasterKeyFile))
		}
	} else {
		rep.Warnings = append(rep.Warnings, "the master key comes from PRIVALYTICS_MASTER_KEY and is not in the backup: without it the backup cannot be read")
	}
	for _, p := range f.Extra {
		rel, err := filepath.Rel(f.DataDir, p)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		raw, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return rep, fmt.Errorf("backup: %w", err)
		}
		if err := writeFile(filepath.Join(dest, rel), raw); err != nil {
			return rep, fmt.Errorf("backup: %w", err)
		}
		rep.Files, rep.Bytes = rep.Files+1, rep.Bytes+int64(len(raw))
	}
	return rep, syncTree(dest)
}

// Restore copies a backup into dataDir, which must not exist or be empty.
// Check the copy with events.Fsck (privalytics restore does) before starting
// the server on it.
func Restore(backupDir, dataDir string) (Report, error) {
	var rep Report
	if err := emptyDir(dataDir); err != nil {
		return rep, err
	}
	err := filepath.Walk(backupDir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(backupDir, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dataDir, rel), 0o700)
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rep.Files, rep.Bytes = rep.Files+1, rep.Bytes+int64(len(raw))
		return writeFile(filepath.Join(dataDir, rel), raw)
	})
	if err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}
	if err := syncTree(dataDir); err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}
	return rep, nil
}

// emptyDir makes dir, refusing one that holds anything: a backup or restore
// never mixes with other files.
func emptyDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err == nil && len(ents) > 0 {
		return privalytics.Errorf(privalytics.ECONFLICT, "%s is not empty; give a new or empty directory", dir)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.MkdirAll(dir, 0o700)
}

// vacuumInto writes a consistent copy of a live SQLite database (one read
// transaction, so writers in WAL mode are not blocked).
func vacuumInto(ctx context.Context, src, dst string) error {
	if _, err := os.Stat(src); err != nil {
		return err
	}
	db, err := sql.Open("sqlite", "file:"+src+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		return err
	}
	return os.Chmod(dst, 0o600)
}

// copyWholeLines copies src up to its last newline: a line being appended
// while the copy runs is left out, as a crash would.
func copyWholeLines(src, dst string) (int64, error) {
	raw, err := os.ReadFile(src)
	if err != nil {
		return 0, err
	}
	if i := bytes.LastIndexByte(raw, '\n'); i >= 0 {
		raw = raw[:i+1]
	} else {
		raw = nil
	}
	return int64(len(raw)), writeFile(dst, raw)
}

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	return errors.Join(werr, serr, f.Close())
}

// syncTree fsyncs every directory under root, so the copied names survive a crash.
func syncTree(root string) error {
	return filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.IsDir() {
			return err
		}
		d, err := os.Open(p)
		if err != nil {
			return err
		}
		serr := d.Sync()
		if cerr := d.Close(); serr == nil {
			serr = cerr
		}
		if serr != nil && !errors.Is(serr, io.EOF) {
			return serr
		}
		return nil
	})
}

// copyState copies the state files under src (HE datasets and jobs,
// federations), skipping the temporary files of writes in flight and files or
// directories removed while the copy runs.
func copyState(src, dst string) (n int64, files int, err error) {
	err = filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		if strings.HasPrefix(d.Name(), ".") { // a write in flight (statefile's temporary name)
			return nil
		}
		in, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		} else if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(filepath.Join(dst, rel), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		k, cerr := io.Copy(out, in)
		serr := out.Sync()
		if err := errors.Join(cerr, serr, out.Close()); err != nil {
			return err
		}
		n, files = n+k, files+1
		return nil
	})
	return n, files, err
}
