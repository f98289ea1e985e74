package main

import (
	"context"

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

// preloadTenants starts loading every tenant's events in the background.
func preloadTenants(ctx context.Context, meta privalytics.MetaStore, ev *events.Store) error {
	return ev.PreloadTenants(ctx, meta)
}
