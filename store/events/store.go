// Package events is the durable event store: per tenant, a write-ahead log of
// Arrow record batches (fsynced, with group commit, before Append returns) that
// background sealing turns into immutable Parquet (zstd) segments, sorted by
// subject and time, under a manifest replaced atomically. Every tenant's events are
// also held in memory as Arrow records, so queries run warm. It implements
// privalytics.EventStore; the on-disk format is in FORMAT.md.
package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/privalytics/privalytics"
)

// Options tune the store.
type Options struct {
	SealRows          int  // seal the log into a segment at this many rows; default 1,000,000
	SyncWrites        bool // fsync before Append returns; turn off only in tests that say why
	Logger            *slog.Logger
	IdempotencyWindow int // recent idempotency keys remembered per tenant; default 100,000
}

// Store is the event store of every tenant under one directory.
type Store struct {
	dir string
	opt Options
	log *slog.Logger

	mu      sync.Mutex
	tenants map[string]*tenant
	closed  bool
	sealers sync.WaitGroup
}

var _ privalytics.EventStore = (*Store)(nil)

// Open opens (creating, 0700) the store in dir. Tenants are loaded on first use,
// since loading needs the tenant's schema.
func Open(dir string, opt Options) (*Store, error) {
	if opt.SealRows <= 0 {
		opt.SealRows = 1_000_000
	}
	if opt.IdempotencyWindow <= 0 {
		opt.IdempotencyWindow = 100_000
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return &Store{dir: dir, opt: opt, log: opt.Logger, tenants: map[string]*tenant{}}, nil
}

// Stats describes a tenant's stored events.
type Stats struct {
	Rows         int   `json:"rows"`
	Segments     int   `json:"segments"`
	LogBytes     int64 `json:"log_bytes"`
	SegmentBytes int64 `json:"segment_bytes"`
}

func (s *Store) tenant(id string, schema privalytics.Schema) (*tenant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, privalytics.Errorf(privalytics.EUNAVAILABLE, "the event store is closed")
	}
	if t, ok := s.tenants[id]; ok {
		return t, nil
	}
	if id == "" || strings.ContainsAny(id, "/\\.") {
		return nil, privalytics.Errorf(privalytics.EINVALID, "bad tenant id %q", id)
	}
	t, err := openTenant(s, id, schema)
	if err != nil {
		return nil, err
	}
	s.tenants[id] = t
	return t, nil
}

// Append stores b durably.
func (s *Store) Append(ctx context.Context, tenantID string, schema privalytics.Schema, b privalytics.Batch) (privalytics.AppendResult, error) {
	if b.Record == nil || b.Record.NumRows() == 0 {
		return privalytics.AppendResult{}, privalytics.Errorf(privalytics.EINVALID, "empty batch")
	}
	t, err := s.tenant(tenantID, schema)
	if err != nil {
		return privalytics.AppendResult{}, err
	}
	if !t.arrow.Equal(b.Record.Schema()) {
		return privalytics.AppendResult{}, fmt.Errorf("events: batch schema does not match tenant %s", tenantID)
	}
	frame, err := encodeFrame(nil, b.IdempotencyKey, b.Record)
	if err != nil {
		return privalytics.AppendResult{}, fmt.Errorf("events: encode: %w", err)
	}
	return t.commit(&pending{frame: frame, key: b.IdempotencyKey, rec: b.Record, done: make(chan struct{})})
}

// Snapshot returns the tenant's current events.
func (s *Store) Snapshot(ctx context.Context, tenantID string, schema privalytics.Schema) (*privalytics.Snapshot, error) {
	t, err := s.tenant(tenantID, schema)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return &privalytics.Snapshot{Version: t.version, Chunks: t.chunks, Subjects: len(t.subjects)}, nil
}

// Seal seals the tenant's log now and waits for it.
func (s *Store) Seal(ctx context.Context, tenantID string) error {
	s.mu.Lock()
	t, ok := s.tenants[tenantID]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	return t.sealNow()
}

// Stats returns a tenant's sizes; a tenant never opened has none.
func (s *Store) Stats(tenantID string) (Stats, error) {
	s.mu.Lock()
	t, ok := s.tenants[tenantID]
	s.mu.Unlock()
	if !ok {
		return Stats{}, nil
	}
	return t.stats()
}

// Close waits for background sealing and closes the logs. Appends already
// acknowledged are on disk; unsealed logs are replayed at the next Open.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ts := s.tenants
	s.mu.Unlock()
	s.sealers.Wait()
	var errs []error
	for _, t := range ts {
		errs = append(errs, t.close())
	}
	return errors.Join(errs...)
}

// manifest is the tenant's durable state outside the logs.
type manifest struct {
	Version       int        `json:"version"`
	Segments      []segment  `json:"segments"`
	SealedThrough int        `json:"sealed_through"` // log files with seq ≤ this are in segments
	Idempotency   []idemItem `json:"idempotency,omitempty"`
}

type segment struct {
	File string `json:"file"`
	Rows int    `json:"rows"`
}

type idemItem struct {
	Key  string `json:"key"`
	Rows int    `json:"rows"`
}

func (t *tenant) manifestPath() string { return filepath.Join(t.dir, "MANIFEST") }

func readManifest(path string) (manifest, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return manifest{Version: 1}, nil
	} else if err != nil {
		return manifest{}, err
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return manifest{}, fmt.Errorf("manifest %s: %w", path, err)
	}
	return m, nil
}

// writeManifest replaces the manifest atomically: temp file, fsync, rename, fsync dir.
func writeManifest(dir string, m manifest) error {
	raw, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "MANIFEST.tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(raw); err != nil {
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
	if err := os.Rename(tmp, filepath.Join(dir, "MANIFEST")); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// logFiles lists the tenant's log sequence numbers in order.
func logFiles(walDir string) ([]int, error) {
	ents, err := os.ReadDir(walDir)
	if err != nil {
		return nil, err
	}
	var seqs []int
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".log"); ok {
			if seq, err := strconv.Atoi(n); err == nil {
				seqs = append(seqs, seq)
			}
		}
	}
	sort.Ints(seqs)
	return seqs, nil
}

func logName(seq int) string { return fmt.Sprintf("%08d.log", seq) }

// schemaOf is for error messages.
func schemaOf(r arrow.Record) string { return r.Schema().String() }
