package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/store/events"
	"github.com/privalytics/privalytics/store/keyring"
)

// existing is what a data directory already holds before start-up opens
// anything: the master key, the metadata store and the events must never be
// silently recreated over one another (a new key reads no tenant's keys; a new
// metadata database resets every privacy budget and forgets every customer's
// pseudonym).
type existing struct {
	inst    *keyring.Installation // nil before the first complete start
	tenants []string              // tenants with event files
	metaDB  bool                  // the SQLite file exists (always false with PostgreSQL)
}

func (e existing) any() bool { return e.inst != nil || len(e.tenants) > 0 || e.metaDB }

// what names what the directory holds, for refusals.
func (e existing) what(cfg Config) string {
	var parts []string
	if e.inst != nil {
		parts = append(parts, keyring.InstallationFile+" (set up "+e.inst.Created.Format("2006-01-02")+")")
	}
	if len(e.tenants) > 0 {
		n := min(len(e.tenants), 3)
		s := "events of " + strings.Join(e.tenants[:n], ", ")
		if len(e.tenants) > n {
			s += fmt.Sprintf(" and %d more tenants", len(e.tenants)-n)
		}
		parts = append(parts, s)
	}
	if e.metaDB {
		parts = append(parts, "meta.db")
	}
	return cfg.DataDir + " holds " + strings.Join(parts, ", ")
}

func inspectDataDir(cfg Config) (existing, error) {
	var e existing
	var err error
	if e.inst, err = keyring.ReadInstallation(cfg.DataDir); err != nil {
		return e, err
	}
	if e.tenants, err = events.Tenants(filepath.Join(cfg.DataDir, "events")); err != nil {
		return e, fmt.Errorf("event store: %w", err)
	}
	if cfg.Postgres == "" {
		_, err := os.Stat(filepath.Join(cfg.DataDir, "meta.db"))
		e.metaDB = err == nil
	}
	return e, nil
}

// openMasterKey loads the master key, creating it only for a data directory
// that holds nothing written with one, and checks it against the installation.
func openMasterKey(cfg Config, e existing) (mk *keyring.MasterKey, created bool, err error) {
	if cfg.MasterKey != "" {
		if mk, err = keyring.MasterKeyFromEnv(cfg.MasterKey); err != nil {
			return nil, false, fmt.Errorf("PRIVALYTICS_MASTER_KEY: %w", err)
		}
	} else {
		if _, serr := os.Stat(cfg.MasterKeyFile); errors.Is(serr, fs.ErrNotExist) && e.any() {
			return nil, false, privalytics.Errorf(privalytics.ECONFLICT,
				"the master key file %s is missing, but %s, written with it: restore the key file from a backup (privalytics restore), or give the key in PRIVALYTICS_MASTER_KEY; a new key could read none of it",
				cfg.MasterKeyFile, e.what(cfg))
		}
		if mk, created, err = keyring.LoadOrCreateMasterKey(cfg.MasterKeyFile); err != nil {
			return nil, false, fmt.Errorf("master key: %w", err)
		}
	}
	if e.inst != nil {
		if err := e.inst.CheckKey(mk); err != nil {
			return nil, false, privalytics.Errorf(privalytics.ECONFLICT, "master key: %v", err)
		}
	}
	return mk, created, nil
}

// refuseFreshMeta is called before the SQLite file is created: a missing
// meta.db next to existing data is a lost database, not a first start.
func refuseFreshMeta(cfg Config, e existing) error {
	if cfg.Postgres != "" || e.metaDB || (e.inst == nil && len(e.tenants) == 0) {
		return nil
	}
	return privalytics.Errorf(privalytics.ECONFLICT,
		"the metadata database %s is missing, but %s: restore meta.db from a backup (privalytics restore); starting with a new one would reset every tenant's privacy budget and lose its pseudonymisation keys",
		filepath.Join(cfg.DataDir, "meta.db"), e.what(cfg))
}

// refuseEmptyMeta is called once the metadata store is open: a store with no
// operator key is new (or emptied), and must not be taken for a first start
// when the directory already holds data.
func refuseEmptyMeta(cfg Config, e existing, operators int) error {
	if operators > 0 || (e.inst == nil && len(e.tenants) == 0) {
		return nil
	}
	where := filepath.Join(cfg.DataDir, "meta.db")
	if cfg.Postgres != "" {
		where = "the PostgreSQL database (--postgres)"
	}
	return privalytics.Errorf(privalytics.ECONFLICT,
		"the metadata database %s is empty (no operator key), but %s: restore it from a backup (privalytics restore) or point the server at the right database; starting would reset every tenant's privacy budget and lose its pseudonymisation keys",
		where, e.what(cfg))
}

// preloadTenants starts loading every tenant's events in the background, so
// the first query after a restart finds them in memory; /readyz answers 503
// until they are loaded, and names any that failed.
func preloadTenants(ctx context.Context, meta privalytics.MetaStore, ev *events.Store) error {
	ts, err := meta.Tenants(ctx)
	if err != nil {
		return fmt.Errorf("list tenants: %w", err)
	}
	schemas := make(map[string]privalytics.Schema, len(ts))
	for _, t := range ts {
		schemas[t.ID] = t.Schema
	}
	ev.Preload(schemas)
	return nil
}
