package backup

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/store/audit"
	"github.com/privalytics/privalytics/store/events"
	"github.com/privalytics/privalytics/store/keyring"
)

// DataDir is a server's data directory as start-up, backup and the offline
// tools (fsck, repair, restore) see it. Its rules keep the master key, the
// metadata store and the events from ever being silently recreated over one
// another: a new key reads no tenant's keys; a new metadata database resets
// every privacy budget and forgets every customer's pseudonym.
type DataDir struct {
	Dir           string
	MasterKeyFile string
	// MasterKey is the key given in PRIVALYTICS_MASTER_KEY (base64); when set,
	// MasterKeyFile is neither read nor copied.
	MasterKey string
	// Postgres is true when the metadata is in PostgreSQL, not Dir/meta.db.
	Postgres bool
	// EncryptAtRest is true when the events are sealed under the master key.
	EncryptAtRest bool
}

// MetaDB is the path of the SQLite metadata database.
func (d DataDir) MetaDB() string { return filepath.Join(d.Dir, "meta.db") }

// EventsDir is the event store's directory.
func (d DataDir) EventsDir() string { return filepath.Join(d.Dir, "events") }

// Files is what Backup copies besides the events.
func (d DataDir) Files() Files {
	f := Files{DataDir: d.Dir, AuditLog: filepath.Join(d.Dir, audit.FileName),
		Extra: []string{filepath.Join(d.Dir, keyring.InstallationFile)}}
	if !d.Postgres {
		f.MetaDB = d.MetaDB()
	}
	if d.MasterKey == "" {
		f.MasterKeyFile = d.MasterKeyFile
	}
	return f
}

// Contents is what a data directory already holds before start-up opens
// anything.
type Contents struct {
	Installation *keyring.Installation // nil before the first complete start
	Tenants      []string              // tenants with event files
	MetaDB       bool                  // the SQLite file exists (always false with PostgreSQL)
}

// Any reports whether the directory holds anything written with a master key.
func (c Contents) Any() bool { return c.Installation != nil || len(c.Tenants) > 0 || c.MetaDB }

// data reports whether the directory holds data a metadata store belongs to.
func (c Contents) data() bool { return c.Installation != nil || len(c.Tenants) > 0 }

// describe names what the directory holds, for refusals.
func (d DataDir) describe(c Contents) string {
	var parts []string
	if c.Installation != nil {
		parts = append(parts, keyring.InstallationFile+" (set up "+c.Installation.Created.Format("2006-01-02")+")")
	}
	if len(c.Tenants) > 0 {
		n := min(len(c.Tenants), 3)
		s := "events of " + strings.Join(c.Tenants[:n], ", ")
		if len(c.Tenants) > n {
			s += fmt.Sprintf(" and %d more tenants", len(c.Tenants)-n)
		}
		parts = append(parts, s)
	}
	if c.MetaDB {
		parts = append(parts, "meta.db")
	}
	return d.Dir + " holds " + strings.Join(parts, ", ")
}

// Inspect reads what the directory holds, creating nothing.
func (d DataDir) Inspect() (Contents, error) {
	var c Contents
	var err error
	if c.Installation, err = keyring.ReadInstallation(d.Dir); err != nil {
		return c, err
	}
	if c.Tenants, err = events.Tenants(d.EventsDir()); err != nil {
		return c, fmt.Errorf("event store: %w", err)
	}
	if !d.Postgres {
		_, err := os.Stat(d.MetaDB())
		c.MetaDB = err == nil
	}
	return c, nil
}

// OpenMasterKey loads the master key, creating it only for a data directory
// that holds nothing written with one, and checks it against the
// installation.
func (d DataDir) OpenMasterKey(c Contents) (mk *keyring.MasterKey, created bool, err error) {
	if d.MasterKey != "" {
		if mk, err = keyring.MasterKeyFromEnv(d.MasterKey); err != nil {
			return nil, false, fmt.Errorf("PRIVALYTICS_MASTER_KEY: %w", err)
		}
	} else {
		if _, serr := os.Stat(d.MasterKeyFile); errors.Is(serr, fs.ErrNotExist) && c.Any() {
			return nil, false, privalytics.Errorf(privalytics.ECONFLICT,
				"the master key file %s is missing, but %s, written with it: restore the key file from a backup (privalytics restore), or give the key in PRIVALYTICS_MASTER_KEY; a new key could read none of it",
				d.MasterKeyFile, d.describe(c))
		}
		if mk, created, err = keyring.LoadOrCreateMasterKey(d.MasterKeyFile); err != nil {
			return nil, false, fmt.Errorf("master key: %w", err)
		}
	}
	if c.Installation != nil {
		if err := c.Installation.CheckKey(mk); err != nil {
			return nil, false, privalytics.Errorf(privalytics.ECONFLICT, "master key: %v", err)
		}
	}
	return mk, created, nil
}

// RefuseFreshMeta is called before the SQLite file is created: a missing
// meta.db next to existing data is a lost database, not a first start.
func (d DataDir) RefuseFreshMeta(c Contents) error {
	if d.Postgres || c.MetaDB || !c.data() {
		return nil
	}
	return privalytics.Errorf(privalytics.ECONFLICT,
		"the metadata database %s is missing, but %s: restore meta.db from a backup (privalytics restore); starting with a new one would reset every tenant's privacy budget and lose its pseudonymisation keys",
		d.MetaDB(), d.describe(c))
}

// RefuseEmptyMeta is called once the metadata store is open: a store with no
// operator key is new (or emptied), and must not be taken for a first start
// when the directory already holds data.
func (d DataDir) RefuseEmptyMeta(c Contents, operators int) error {
	if operators > 0 || !c.data() {
		return nil
	}
	where := d.MetaDB()
	if d.Postgres {
		where = "the PostgreSQL database (--postgres)"
	}
	return privalytics.Errorf(privalytics.ECONFLICT,
		"the metadata database %s is empty (no operator key), but %s: restore it from a backup (privalytics restore) or point the server at the right database; starting would reset every tenant's privacy budget and lose its pseudonymisation keys",
		where, d.describe(c))
}

// OfflineEventOptions are the event store options of an offline tool: the
// master key is read, never created.
func (d DataDir) OfflineEventOptions() (events.Options, error) {
	opt := events.Options{SyncWrites: true}
	if !d.EncryptAtRest {
		return opt, nil
	}
	have, err := d.Inspect()
	if err != nil {
		return opt, err
	}
	if _, err := os.Stat(d.MasterKeyFile); d.MasterKey == "" && os.IsNotExist(err) && !have.Any() {
		return opt, nil // an empty directory: nothing is encrypted
	}
	mk, _, err := d.OpenMasterKey(have)
	if err != nil {
		return opt, err
	}
	opt.Encryption = mk
	return opt, nil
}

// CheckEvents checks every tenant's event files, changing nothing, and
// prints each problem to w with what a repair would do about it.
func (d DataDir) CheckEvents(opt events.Options, w io.Writer) (events.Damages, error) {
	ds, err := events.Fsck(d.EventsDir(), opt)
	if err != nil {
		return nil, err
	}
	for _, dm := range ds {
		fmt.Fprintf(w, "DAMAGED %s: %s\n", filepath.Join("events", dm.File), dm.Problem)
		if dm.Repair != "" {
			fmt.Fprintf(w, "  repair would %s\n", dm.Repair)
		} else {
			fmt.Fprintln(w, "  no repair can help")
		}
	}
	return ds, nil
}

// Fsck is CheckEvents and a check of the audit log's hash chain. It returns
// the events' damages and the number of damaged files, the audit log
// included; a damaged audit log has no automatic repair.
func (d DataDir) Fsck(opt events.Options, w io.Writer) (events.Damages, int, error) {
	ds, err := d.CheckEvents(opt, w)
	if err != nil {
		return nil, 0, err
	}
	bad := len(ds)
	if _, _, err := audit.VerifyFile(filepath.Join(d.Dir, audit.FileName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(w, "DAMAGED %s: %v\n  no automatic repair: keep the file as evidence and start a new one only after review\n", audit.FileName, err)
		bad++
	}
	return ds, bad, nil
}

// Repair applies every event repair Fsck describes, printing each, and is
// ECONFLICT when problems with no automatic repair are left.
func (d DataDir) Repair(opt events.Options, w io.Writer) error {
	fixed, left, err := events.Repair(d.EventsDir(), opt)
	for _, dm := range fixed {
		fmt.Fprintf(w, "REPAIRED %s\n", filepath.Join("events", dm.File))
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%d repaired, %d left\n", len(fixed), len(left))
	if len(left) > 0 {
		return privalytics.Errorf(privalytics.ECONFLICT, "%d problems have no automatic repair; see above", len(left))
	}
	return nil
}

// FsckAndRepair is the fsck and repair commands on a stopped server's
// directory: it checks everything (Fsck) and, when repair and apply, applies
// the event repairs; a repair without apply only says how to apply it. It is
// ECONFLICT while damage is left.
func (d DataDir) FsckAndRepair(w io.Writer, repair, apply bool) error {
	opt, err := d.OfflineEventOptions()
	if err != nil {
		return err
	}
	ds, bad, err := d.Fsck(opt, w)
	if err != nil {
		return err
	}
	if repair && apply && len(ds) > 0 {
		return d.Repair(opt, w)
	}
	if bad == 0 {
		fmt.Fprintln(w, "no damage found")
		return nil
	}
	if repair {
		fmt.Fprintln(w, "run again with --yes to apply these repairs")
	}
	return privalytics.Errorf(privalytics.ECONFLICT, "%d damaged files in %s", bad, d.Dir)
}

// CheckRestored checks the events of a directory Restore filled, as fsck
// does, and is ECONFLICT when any file is damaged.
func (d DataDir) CheckRestored(w io.Writer) error {
	opt, err := d.OfflineEventOptions()
	if err != nil {
		return err
	}
	ds, err := d.CheckEvents(opt, w)
	if err != nil {
		return err
	}
	if len(ds) > 0 {
		return privalytics.Errorf(privalytics.ECONFLICT, "the restored events have %d damaged files", len(ds))
	}
	fmt.Fprintln(w, "the restored events check clean")
	return nil
}
