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
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/privalytics/privalytics"
)

// Options tune the store. The zero value gives the defaults, except SyncWrites:
// set it to true everywhere but in tests and benchmarks that say why not.
type Options struct {
	SealRows          int  // seal the log into a segment once it holds this many rows; default 1,000,000
	SyncWrites        bool // fsync before Append returns; false loses acknowledged appends on a power cut
	Logger            *slog.Logger
	IdempotencyWindow int // recent idempotency keys remembered per tenant; default 100,000
	// MaxOpenLogs bounds the log files held open (one per loaded tenant
	// that wrote recently); the others are reopened at their next write.
	// Default 512, well under the common limit of 1,024 descriptors.
	MaxOpenLogs int
	// Encryption, when set, encrypts every log frame and segment file with
	// AES-256-GCM under per-tenant data keys it wraps (see FORMAT.md). Plaintext
	// files written before it was set stay readable and are re-encrypted by
	// compaction. Nil: files in plaintext.
	Encryption KeyWrapper
}

// MaxIdempotencyKey is the longest idempotency key accepted, in bytes.
const MaxIdempotencyKey = 256

// Store is the event store of every tenant under one directory. Tenants are
// loaded lazily, on their first Append or Snapshot, because loading needs the
// tenant's schema; loading one tenant does not block the others.
type Store struct {
	dir string
	opt Options
	log *slog.Logger

	// openLogs bounds the log files held open across tenants (fdlru.go).
	openLogs *logLRU

	mu      sync.Mutex
	tenants map[string]*tenantSlot
	closed  bool
	// failed holds the last load error of each tenant that failed to load
	// (cleared when it loads); preloading counts tenants Preload has yet to load.
	failed     map[string]string
	preloading int
	// workers counts the goroutines the store owns (background seals and
	// coalescing); Close waits for them.
	workers sync.WaitGroup

	// crashBeforeManifest, when set (tests only), makes a seal stop after its
	// segment is written and fsynced but before the manifest names it, as a crash would.
	crashBeforeManifest func() error
	// loadHook, when set (tests only), runs at the start of every tenant load.
	loadHook func(id string)
	// manualCompaction, when set (tests only), leaves compaction to Compact, so
	// a test can see the state between an erasure and its compaction.
	manualCompaction bool

	// imageLoads and parquetLoads count segments loaded from their load
	// image and from the Parquet file; imageWrites counts images written.
	imageLoads, parquetLoads, imageWrites atomic.Int64
}

// tenantSlot lets one goroutine load a tenant while others wait for that tenant only.
type tenantSlot struct {
	ready chan struct{}
	t     *tenant
	err   error
}

var _ privalytics.EventStore = (*Store)(nil)

// Open opens the store in dir, creating it (0700) if needed.
func Open(dir string, opt Options) (*Store, error) {
	if opt.SealRows <= 0 {
		opt.SealRows = 1_000_000
	}
	if opt.IdempotencyWindow <= 0 {
		opt.IdempotencyWindow = 100_000
	}
	if opt.MaxOpenLogs <= 0 {
		opt.MaxOpenLogs = 512
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if err := fsys.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("events: open %s: %w", dir, err)
	}
	return &Store{dir: dir, opt: opt, log: opt.Logger, tenants: map[string]*tenantSlot{}, failed: map[string]string{}, openLogs: newLogLRU(opt.MaxOpenLogs)}, nil
}

// Stats describes a tenant's stored events.
type Stats struct {
	Rows         int   `json:"rows"`
	Subjects     int   `json:"subjects"`      // distinct subjects numbered in memory
	Segments     int   `json:"segments"`      // sealed Parquet files
	Chunks       int   `json:"chunks"`        // in-memory records a snapshot holds
	LogBytes     int64 `json:"log_bytes"`     // write-ahead log files on disk
	SegmentBytes int64 `json:"segment_bytes"` // segment files on disk
	// MemoryBytes is what the in-memory records hold: Arrow buffers (a buffer
	// shared by several columns counted once), dictionaries and the subject numbers.
	MemoryBytes int64 `json:"memory_bytes"`
	LogSyncs    int64 `json:"log_syncs"` // group commits (one write + fsync each) since the tenant was loaded
}

// tenantIDPattern is the root package's rule for tenant IDs; it also keeps IDs
// safe as directory names.
var tenantIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// tenant returns the loaded tenant, loading it on first use.
func (s *Store) tenant(id string, schema privalytics.Schema) (*tenant, error) {
	if !tenantIDPattern.MatchString(id) {
		return nil, privalytics.Errorf(privalytics.EINVALID, "tenant id %q must be lower-case letters, digits and -, 1 to 63 long", id)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, privalytics.Errorf(privalytics.EUNAVAILABLE, "the event store is closed; retry once the server has restarted")
	}
	slot, ok := s.tenants[id]
	if !ok {
		slot = &tenantSlot{ready: make(chan struct{})}
		s.tenants[id] = slot
		s.workers.Add(1) // Close must not close files under a loading tenant
		s.mu.Unlock()
		slot.t, slot.err = s.load(id, schema)
		close(slot.ready)
		s.workers.Done()
		s.mu.Lock()
		if slot.err != nil {
			// Forget the failure so a later call (after the operator fixed the
			// files) tries again; remember it for readiness.
			delete(s.tenants, id)
			if !shredded(filepath.Join(s.dir, id)) { // a shredded tenant is gone by design
				s.failed[id] = privalytics.ErrorMessage(slot.err)
				if privalytics.ErrorCode(slot.err) == privalytics.EINTERNAL {
					s.failed[id] = slot.err.Error()
				}
			}
		} else {
			delete(s.failed, id)
		}
		s.mu.Unlock()
	} else {
		s.mu.Unlock()
		<-slot.ready
	}
	if slot.err != nil {
		return nil, slot.err
	}
	if !slot.t.arrow.Equal(schema.Arrow()) {
		return nil, privalytics.Errorf(privalytics.ECONFLICT, "tenant %s was loaded with another schema; restart the server after changing a tenant's schema", id)
	}
	return slot.t, nil
}

// load runs openTenant, turning a panic in it (a decoder that trusts damaged
// bytes) into the tenant's error: a panic must never leave the slot unready,
// which would hang every later request for the tenant and Close.
func (s *Store) load(id string, schema privalytics.Schema) (t *tenant, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("loading a tenant panicked; it stays unloaded", "tenant", id, "panic", r, "stack", string(debug.Stack()))
			t, err = nil, privalytics.Errorf(privalytics.EUNAVAILABLE, "tenant %s's stored events could not be loaded (the server log has the details); nothing was changed", id)
		}
	}()
	if s.loadHook != nil {
		s.loadHook(id)
	}
	return openTenant(s, id, schema)
}

// Preload loads the tenants in the background (goroutines the Store owns, one
// per core), so the first query after a restart finds them in memory. A
// tenant a request loads first is not loaded twice.
func (s *Store) Preload(schemas map[string]privalytics.Schema) {
	ids := slices.Sorted(maps.Keys(schemas))
	s.mu.Lock()
	s.preloading += len(ids)
	s.mu.Unlock()
	next := make(chan string)
	workers := max(1, min(runtime.GOMAXPROCS(0), len(ids)))
	var feeding sync.WaitGroup
	for range workers {
		feeding.Add(1)
		if !s.goWorker(func() {
			defer feeding.Done()
			for id := range next {
				if s.isClosed() {
					continue // drain: Close is waiting
				}
				if _, err := s.tenant(id, schemas[id]); err != nil {
					s.log.Error("a tenant failed to load at start", "tenant", id, "err", err)
				}
				s.mu.Lock()
				s.preloading--
				s.mu.Unlock()
			}
		}) {
			feeding.Done()
		}
	}
	s.goWorker(func() {
		for _, id := range ids {
			next <- id
		}
		close(next)
		feeding.Wait()
		s.mu.Lock()
		s.preloading = 0
		s.mu.Unlock()
	})
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Readiness reports whether the store is ready: nil once every preloaded
// tenant is loaded and no tenant has failed to load; otherwise an error
// saying how many are still loading, or which failed and why.
func (s *Store) Readiness() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.preloading > 0 {
		return privalytics.Errorf(privalytics.EUNAVAILABLE, "loading tenants: %d to go", s.preloading)
	}
	if len(s.failed) > 0 {
		ids := slices.Sorted(maps.Keys(s.failed))
		e := privalytics.Errorf(privalytics.EUNAVAILABLE, "%d tenants failed to load (see privalytics fsck): %s", len(ids), strings.Join(ids, ", "))
		for _, id := range ids {
			e = e.With(id, s.failed[id])
		}
		return e
	}
	return nil
}

// loaded returns the tenant if it is loaded, without loading it.
func (s *Store) loaded(id string) *tenant {
	s.mu.Lock()
	slot, ok := s.tenants[id]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	<-slot.ready
	return slot.t
}

// Append stores b durably: when it returns without error, the batch is in the
// log and fsynced (with SyncWrites), and visible to later snapshots. Errors:
// EINVALID for an empty batch, a batch not in the tenant's schema or an overlong
// key; EUNAVAILABLE while closing; EINTERNAL for I/O failures.
func (s *Store) Append(ctx context.Context, tenantID string, schema privalytics.Schema, b privalytics.Batch) (privalytics.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return privalytics.AppendResult{}, err
	}
	if b.Record == nil || b.Record.NumRows() == 0 {
		return privalytics.AppendResult{}, privalytics.Errorf(privalytics.EINVALID, "the batch has no rows; send at least one event")
	}
	if len(b.IdempotencyKey) > MaxIdempotencyKey {
		return privalytics.AppendResult{}, privalytics.Errorf(privalytics.EINVALID, "idempotency key is %d bytes; use at most %d", len(b.IdempotencyKey), MaxIdempotencyKey)
	}
	t, err := s.tenant(tenantID, schema)
	if err != nil {
		return privalytics.AppendResult{}, err
	}
	if !t.arrow.Equal(b.Record.Schema()) {
		return privalytics.AppendResult{}, privalytics.Errorf(privalytics.EINVALID, "the batch's columns do not match tenant %s's schema: build records with Schema.Arrow(), got %s", tenantID, schemaOf(b.Record))
	}
	frame, err := encodeFrame(frameBuf(), b.IdempotencyKey, b.Record)
	if err != nil {
		return privalytics.AppendResult{}, fmt.Errorf("events: encode batch: %w", err)
	}
	p := &pending{frame: frame, key: b.IdempotencyKey, rec: b.Record, done: make(chan struct{})}
	if t.keys != nil {
		// Sealed here, by each writer in parallel; the leader re-seals the rare
		// frame whose key a rotation retired meanwhile.
		p.plain = frame
		if p.frame, err = t.keys.sealFrame(frame); err != nil {
			return privalytics.AppendResult{}, fmt.Errorf("events: encrypt batch: %w", err)
		}
	}
	b.Record.Retain() // held in memory for as long as the tenant is
	res, err := t.commit(p)
	if err != nil || res.Duplicate {
		b.Record.Release()
	}
	return res, err
}

// Snapshot returns the tenant's current events: an immutable view that later
// appends, coalescing and seals do not change. A tenant with no events gets an
// empty snapshot.
func (s *Store) Snapshot(ctx context.Context, tenantID string, schema privalytics.Schema) (*privalytics.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, err := s.tenant(tenantID, schema)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	// Clipped, so a caller appending to Chunks cannot write into the array the
	// tenant keeps appending to.
	return &privalytics.Snapshot{Version: t.version, Chunks: slices.Clip(t.chunks), Subjects: len(t.subjects)}, nil
}

// Seal seals the tenant's log now and waits for it. A tenant not loaded has
// nothing in memory to seal; its logs are replayed when it is loaded.
func (s *Store) Seal(ctx context.Context, tenantID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t := s.loaded(tenantID)
	if t == nil {
		return nil
	}
	return t.sealNow()
}

// Stats returns a tenant's sizes; a tenant not loaded yet reports zeros.
func (s *Store) Stats(tenantID string) (Stats, error) {
	t := s.loaded(tenantID)
	if t == nil {
		return Stats{}, nil
	}
	return t.stats()
}

// Segments returns the number of a tenant's sealed segments (0 for a tenant
// not loaded yet); the server's metrics report it.
func (s *Store) Segments(tenantID string) (int, error) {
	st, err := s.Stats(tenantID)
	return st.Segments, err
}

// Close waits for background seals and coalescing, then closes the logs. It
// does not seal: every acknowledged append is already fsynced in a log, which
// the next Open replays (a few hundred ms per million rows), while sealing a
// nearly full log at shutdown could outlast the shutdown deadline. Appends
// after Close get EUNAVAILABLE. Close is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	slots := s.tenants
	s.mu.Unlock()
	s.workers.Wait()
	var errs []error
	for _, slot := range slots {
		if slot.t != nil {
			errs = append(errs, slot.t.close())
		}
	}
	return errors.Join(errs...)
}

// firstVersion starts a tenant's versions from the clock, so a version seen
// before a restart is not reused for different data after it (versions key
// cached answers). Seconds × 2^20 leaves room for a million appends a second
// between restarts and stays below 2^53, so JSON clients in JavaScript read
// versions exactly (until the year 2242).
func firstVersion() uint64 { return uint64(time.Now().Unix()) << 20 }

// manifest is the tenant's durable state outside the logs.
type manifest struct {
	Version       int        `json:"version"`
	Segments      []segment  `json:"segments"`
	SealedThrough int        `json:"sealed_through"` // log files with seq ≤ this are in segments
	Idempotency   []idemItem `json:"idempotency,omitempty"`
	// Erasures are the erasures not yet compacted: their subjects' rows in
	// segments and logs numbered ≤ Through are hidden when loading. Compaction
	// removes the entry, so no subject stays named on disk.
	Erasures []erasure `json:"erasures,omitempty"`
	// PurgedBefore (µs since the epoch) hides every older row when loading; it
	// stays after compaction, so rows older than a purge never come back.
	PurgedBefore int64 `json:"purged_before,omitempty"`
	// PurgePending says a purge has not been compacted yet.
	PurgePending bool `json:"purge_pending,omitempty"`
	// Receipts are the tenant's most recent erasure receipts (maxReceipts).
	Receipts []privalytics.ErasureReceipt `json:"receipts,omitempty"`
	// LastLog is the newest log file started when the manifest was written:
	// every log above SealedThrough up to it must exist, so a deleted log is
	// reported instead of silently losing its batches.
	LastLog int `json:"last_log,omitempty"`
	// LogsFrom is the first log this format's gap check covers: 1 for a
	// tenant this build created, the first log it started for a tenant an
	// older build wrote (whose recovery deleted logs, leaving gaps).
	LogsFrom int `json:"logs_from,omitempty"`
	// DroppedThrough is the highest log number whose rows were all hidden, so
	// it was dropped with no segment; with the newest segment it bounds the
	// logs recovery may delete as sealed.
	DroppedThrough int `json:"dropped_through,omitempty"`
	// Dropped names segments compaction left empty and removes after this
	// manifest is written; a crash before the removal leaves them to delete.
	Dropped []string `json:"dropped,omitempty"`
}

// erasure is a pending erasure: a tombstone until compaction.
type erasure struct {
	Receipt  string   `json:"receipt"`
	Subjects []uint64 `json:"subjects"`
	Through  int      `json:"through"` // highest log (and segment) number holding rows to hide
}

type segment struct {
	File string `json:"file"`
	Rows int    `json:"rows"`
	// Bytes and CRC (CRC-32C of the whole file) are verified at every load;
	// entries written by older builds have neither.
	Bytes int64  `json:"bytes,omitempty"`
	CRC   uint32 `json:"crc32c,omitempty"`
	// Next is set while compaction replaces the file: either version is the
	// segment until the next manifest names only the new one.
	Next *segVersion `json:"next,omitempty"`
}

type segVersion struct {
	Rows  int    `json:"rows"`
	Bytes int64  `json:"bytes"`
	CRC   uint32 `json:"crc32c"`
}

// match returns the rows of the version raw is, or an error when it is none
// of them. Entries of older builds carry no checksum and match any file.
func (s segment) match(raw []byte) (rows int, err error) {
	if s.Bytes == 0 {
		return s.Rows, nil
	}
	sum := crcOf(raw)
	if int64(len(raw)) == s.Bytes && sum == s.CRC {
		return s.Rows, nil
	}
	if n := s.Next; n != nil && int64(len(raw)) == n.Bytes && sum == n.CRC {
		return n.Rows, nil
	}
	if int64(len(raw)) != s.Bytes {
		return 0, fmt.Errorf("the file is %d bytes, the MANIFEST says %d", len(raw), s.Bytes)
	}
	return 0, fmt.Errorf("checksum mismatch: CRC-32C %08x, the MANIFEST says %08x", sum, s.CRC)
}

type idemItem struct {
	Key  string `json:"key"`
	Rows int    `json:"rows"`
}

func (t *tenant) manifestPath() string { return filepath.Join(t.dir, "MANIFEST") }

func readManifest(path string) (manifest, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return manifest{Version: manifestVersion}, nil
	} else if err != nil {
		return manifest{}, err
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return manifest{}, fmt.Errorf("manifest %s: %w", path, err)
	}
	if m.Version != manifestVersion {
		return manifest{}, fmt.Errorf("manifest %s has format version %d; this build reads version %d", path, m.Version, manifestVersion)
	}
	return m, nil
}

// writeManifest records the newest log in m, then writes it. Callers hold
// sealRun (or are the only user), so manifest writes never interleave.
func (t *tenant) writeManifest(m *manifest) error {
	m.LastLog = max(m.LastLog, int(t.lastLog.Load()))
	return writeManifest(t.dir, *m)
}

// writeManifest replaces the manifest atomically: temp file, fsync, rename, fsync dir.
func writeManifest(dir string, m manifest) error {
	raw, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "MANIFEST.tmp")
	f, err := fsys.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
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
	if err := fsys.Rename(tmp, filepath.Join(dir, "MANIFEST")); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error { return fsys.SyncDir(dir) }

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
	slices.Sort(seqs)
	return seqs, nil
}

func logName(seq int) string { return fmt.Sprintf("%08d.log", seq) }

// schemaOf is for error messages.
func schemaOf(r arrow.Record) string { return r.Schema().String() }
