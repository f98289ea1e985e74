package main

import (
	"context"
	"fmt"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/store/backup"
	"github.com/privalytics/privalytics/store/events"
	"github.com/privalytics/privalytics/store/keyring"
)

// existing is what a data directory already holds, which decides what
// start-up may create; the rules are store/backup's DataDir. inst repeats
// Contents.Installation under the name app.go reads.
type existing struct {
	backup.Contents
	inst *keyring.Installation
}

// dataDir is the configuration's data directory.
func dataDir(cfg Config) backup.DataDir {
	return backup.DataDir{Dir: cfg.DataDir, MasterKeyFile: cfg.MasterKeyFile, MasterKey: cfg.MasterKey,
		Postgres: cfg.Postgres != "", EncryptAtRest: cfg.EncryptAtRest}
}

func inspectDataDir(cfg Config) (existing, error) {
	c, err := dataDir(cfg).Inspect()
	return existing{c, c.Installation}, err
}

func openMasterKey(cfg Config, e existing) (*keyring.MasterKey, bool, error) {
	return dataDir(cfg).OpenMasterKey(e.Contents)
}

func refuseFreshMeta(cfg Config, e existing) error { return dataDir(cfg).RefuseFreshMeta(e.Contents) }

func refuseEmptyMeta(cfg Config, e existing, operators int) error {
	return dataDir(cfg).RefuseEmptyMeta(e.Contents, operators)
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
