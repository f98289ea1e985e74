package backup

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/store/events"
	"github.com/privalytics/privalytics/store/keyring"
)

// TestDataDirRefusesToRecreate: a fresh directory may create its key and
// metadata; next to a tenant's events, a missing key file, a missing meta.db
// and an empty metadata store are each refused, naming what is there.
func TestDataDirRefusesToRecreate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d := DataDir{Dir: dir, MasterKeyFile: filepath.Join(dir, "master.key"), EncryptAtRest: true}
	c, err := d.Inspect()
	if err != nil || c.Any() {
		t.Fatalf("fresh directory: %+v, %v", c, err)
	}
	if err := d.RefuseFreshMeta(c); err != nil {
		t.Errorf("fresh directory, no meta.db: %v", err)
	}
	if err := d.RefuseEmptyMeta(c, 0); err != nil {
		t.Errorf("fresh directory, no operator: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(d.EventsDir(), "shop"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.EventsDir(), "shop", "MANIFEST"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err = d.Inspect(); err != nil || len(c.Tenants) != 1 {
		t.Fatalf("with a tenant's events: %+v, %v", c, err)
	}
	for what, err := range map[string]error{
		"fresh meta":  d.RefuseFreshMeta(c),
		"empty meta":  d.RefuseEmptyMeta(c, 0),
		"missing key": func() error { _, _, err := d.OpenMasterKey(c); return err }(),
	} {
		if privalytics.ErrorCode(err) != privalytics.ECONFLICT || !strings.Contains(err.Error(), "events of shop") || !strings.Contains(err.Error(), "restore") {
			t.Errorf("%s: %v, want ECONFLICT naming the events and a restore", what, err)
		}
	}
	if _, err := os.Stat(d.MasterKeyFile); !os.IsNotExist(err) {
		t.Errorf("a refused start created %s (%v)", d.MasterKeyFile, err)
	}
	if err := d.RefuseEmptyMeta(c, 1); err != nil {
		t.Errorf("a store with an operator: %v", err)
	}
	pg := d
	pg.Postgres = true
	if err := pg.RefuseFreshMeta(c); err != nil {
		t.Errorf("PostgreSQL has no meta.db to lose: %v", err)
	}
	if err := pg.RefuseEmptyMeta(c, 0); err == nil || !strings.Contains(err.Error(), "--postgres") {
		t.Errorf("empty PostgreSQL store: %v, want a refusal naming --postgres", err)
	}
}

// TestDataDirMasterKey: a fresh directory creates its key, a later open
// reads the same one, and the installation rejects another key.
func TestDataDirMasterKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d := DataDir{Dir: dir, MasterKeyFile: filepath.Join(dir, "master.key")}
	mk, created, err := d.OpenMasterKey(Contents{})
	if err != nil || !created {
		t.Fatalf("first open: created %v, %v", created, err)
	}
	if _, err := keyring.CreateInstallation(dir, mk); err != nil {
		t.Fatal(err)
	}
	c, err := d.Inspect()
	if err != nil || c.Installation == nil {
		t.Fatalf("after installation: %+v, %v", c, err)
	}
	if _, created, err := d.OpenMasterKey(c); err != nil || created {
		t.Errorf("second open: created %v, %v", created, err)
	}
	other := d
	other.MasterKeyFile = filepath.Join(t.TempDir(), "other.key")
	if _, _, err := other.OpenMasterKey(c); privalytics.ErrorCode(err) != privalytics.ECONFLICT {
		t.Errorf("another key file over this installation: %v, want ECONFLICT", err)
	}
	opt, err := DataDir{Dir: dir, MasterKeyFile: d.MasterKeyFile, EncryptAtRest: true}.OfflineEventOptions()
	if err != nil || opt.Encryption == nil {
		t.Errorf("offline options of an encrypted directory: %+v, %v", opt, err)
	}
}

func TestDataDirFilesAndFsck(t *testing.T) {
	t.Parallel()
	d := DataDir{Dir: "/d", MasterKeyFile: "/d/master.key"}
	if f := d.Files(); f.MetaDB != "/d/meta.db" || f.MasterKeyFile != "/d/master.key" || f.AuditLog == "" || len(f.Extra) != 1 {
		t.Errorf("files of a SQLite directory: %+v", f)
	}
	d.Postgres, d.MasterKey = true, "from-env"
	if f := d.Files(); f.MetaDB != "" || f.MasterKeyFile != "" {
		t.Errorf("PostgreSQL and a key from the environment are not files to copy: %+v", f)
	}
	clean := DataDir{Dir: t.TempDir()}
	if err := os.Mkdir(clean.EventsDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	ds, bad, err := clean.Fsck(mustOptions(t, clean), &out)
	if err != nil || len(ds) != 0 || bad != 0 || out.Len() != 0 {
		t.Errorf("fsck of an empty directory: %v, %d bad, %v, printed %q", ds, bad, err, out.String())
	}
}

func mustOptions(t *testing.T, d DataDir) events.Options {
	t.Helper()
	opt, err := d.OfflineEventOptions()
	if err != nil {
		t.Fatal(err)
	}
	return opt
}
