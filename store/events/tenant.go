package events

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/privalytics/privalytics"
)

// chunkOf pairs an in-memory record with the log file it came from (0 when it came
// from a segment), so sealing knows which records a log holds.
type chunkOf struct {
	chunk privalytics.Chunk
	seq   int
}

// tenant is one tenant's log, segments and in-memory records.
type tenant struct {
	s      *Store
	id     string
	dir    string
	schema privalytics.Schema
	arrow  *arrow.Schema

	// mu guards the visible state. Snapshots copy the chunks slice header; the
	// slice is replaced, never mutated in place, so snapshots stay immutable.
	mu       sync.Mutex
	version  uint64
	chunks   []privalytics.Chunk
	sources  []int // log seq of each chunk (0: sealed segment)
	subjects map[uint64]uint32
	idem     map[string]int
	idemFIFO []string
	man      manifest

	// wmu serialises log writes; the holder writes every queued frame and fsyncs
	// once (group commit).
	wmu      sync.Mutex
	qmu      sync.Mutex
	queue    []*pending
	log      *os.File
	logSeq   int
	logRows  int
	logBytes int64

	sealMu  sync.Mutex // guards sealing
	sealing bool       // a background seal is scheduled or running
	sealRun sync.Mutex // held for a whole seal: two seals at once would both take the same log records
}

type pending struct {
	frame []byte
	key   string
	rec   arrow.Record
	done  chan struct{}
	res   privalytics.AppendResult
	err   error
}

// openTenant recovers a tenant: manifest, segments, then the logs not yet sealed.
// A torn or corrupt log tail is cut (and logged); later log files are removed,
// since nothing after a corrupt frame can be trusted to be in order.
func openTenant(s *Store, id string, schema privalytics.Schema) (*tenant, error) {
	t := &tenant{s: s, id: id, dir: filepath.Join(s.dir, id), schema: schema, arrow: schema.Arrow(),
		subjects: map[uint64]uint32{}, idem: map[string]int{}}
	walDir := filepath.Join(t.dir, "wal")
	if err := os.MkdirAll(walDir, 0o700); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(t.dir, "segments"), 0o700); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	m, err := readManifest(t.manifestPath())
	if err != nil {
		return nil, fmt.Errorf("events: tenant %s: %w", id, err)
	}
	t.man = m
	for _, it := range m.Idempotency {
		t.remember(it.Key, it.Rows)
	}
	known := map[string]bool{}
	for _, seg := range m.Segments {
		known[seg.File] = true
		recs, err := readSegment(filepath.Join(t.dir, "segments", seg.File), t.arrow)
		if err != nil {
			return nil, fmt.Errorf("events: tenant %s segment %s: %w", id, seg.File, err)
		}
		for _, r := range recs {
			t.addChunk(r, 0)
		}
	}
	// A segment written but never named by the manifest is an interrupted seal:
	// its rows are still in the logs, so the file is dropped.
	if ents, err := os.ReadDir(filepath.Join(t.dir, "segments")); err == nil {
		for _, e := range ents {
			if !known[e.Name()] {
				s.log.Warn("removing segment of an interrupted seal", "tenant", id, "file", e.Name())
				os.Remove(filepath.Join(t.dir, "segments", e.Name()))
			}
		}
	}
	seqs, err := logFiles(walDir)
	if err != nil {
		return nil, err
	}
	cut := false
	for _, seq := range seqs {
		path := filepath.Join(walDir, logName(seq))
		if seq <= m.SealedThrough || cut {
			if cut {
				s.log.Warn("removing log written after a corrupt frame", "tenant", id, "file", path)
			}
			os.Remove(path)
			continue
		}
		frames, good, err := readLog(path)
		if err != nil {
			return nil, fmt.Errorf("events: tenant %s log %s: %w", id, path, err)
		}
		if fi, err := os.Stat(path); err == nil && fi.Size() > good {
			s.log.Warn("cutting torn or corrupt log tail", "tenant", id, "file", path, "bytes_cut", fi.Size()-good, "frames_kept", len(frames))
			if err := os.Truncate(path, good); err != nil {
				return nil, err
			}
			cut = true
		}
		for _, f := range frames {
			if !t.arrow.Equal(f.rec.Schema()) {
				return nil, fmt.Errorf("events: tenant %s log %s holds a batch of another schema: %s", id, path, schemaOf(f.rec))
			}
			t.addChunk(f.rec, seq)
			t.logRows += int(f.rec.NumRows())
			if f.key != "" {
				t.remember(f.key, int(f.rec.NumRows()))
			}
		}
		t.logSeq = seq
	}
	t.version = 1
	if err := t.openLog(max(t.logSeq, m.SealedThrough) + 1); err != nil {
		return nil, err
	}
	return t, nil
}

// openLog starts a new log file. Callers hold wmu (or are the only user).
func (t *tenant) openLog(seq int) error {
	path := filepath.Join(t.dir, "wal", logName(seq))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("events: open log: %w", err)
	}
	if err := syncDir(filepath.Join(t.dir, "wal")); err != nil {
		f.Close()
		return err
	}
	if t.log != nil {
		t.log.Close()
	}
	t.log, t.logSeq, t.logBytes = f, seq, 0
	return nil
}

// addChunk makes rec visible with its dense subject numbers. Callers hold mu (or
// are the only user).
func (t *tenant) addChunk(rec arrow.Record, seq int) {
	subj := rec.Column(0).(*array.Uint64).Uint64Values()
	nums := make([]uint32, len(subj))
	for i, s := range subj {
		n, ok := t.subjects[s]
		if !ok {
			n = uint32(len(t.subjects))
			t.subjects[s] = n
		}
		nums[i] = n
	}
	chunks := make([]privalytics.Chunk, len(t.chunks), len(t.chunks)+1)
	copy(chunks, t.chunks)
	t.chunks = append(chunks, privalytics.Chunk{Record: rec, Subjects: nums})
	t.sources = append(t.sources, seq)
	t.version++
}

// remember records an idempotency key, forgetting the oldest past the window.
func (t *tenant) remember(key string, rows int) {
	if _, ok := t.idem[key]; ok {
		return
	}
	t.idem[key] = rows
	t.idemFIFO = append(t.idemFIFO, key)
	if len(t.idemFIFO) > t.s.opt.IdempotencyWindow {
		delete(t.idem, t.idemFIFO[0])
		t.idemFIFO = t.idemFIFO[1:]
	}
}

// commit queues p and waits until a leader has written and fsynced it.
func (t *tenant) commit(p *pending) (privalytics.AppendResult, error) {
	t.qmu.Lock()
	t.queue = append(t.queue, p)
	t.qmu.Unlock()

	t.wmu.Lock()
	select {
	case <-p.done: // an earlier leader took it
		t.wmu.Unlock()
		return p.res, p.err
	default:
	}
	t.qmu.Lock()
	group := t.queue
	t.queue = nil
	t.qmu.Unlock()
	t.writeGroup(group)
	sealDue := t.logRows >= t.s.opt.SealRows
	t.wmu.Unlock()
	if sealDue {
		t.sealAsync()
	}
	return p.res, p.err
}

// writeGroup writes the group's frames with one write and one fsync, then makes
// them visible and answers each waiter. Duplicates (by idempotency key, also
// within the group) are answered without being written.
func (t *tenant) writeGroup(group []*pending) {
	var buf []byte
	var fresh []*pending
	inGroup := map[string]int{}
	t.mu.Lock()
	for _, p := range group {
		if p.key != "" {
			if rows, ok := t.idem[p.key]; ok {
				p.res = privalytics.AppendResult{Rows: rows, Duplicate: true}
				continue
			}
			if rows, ok := inGroup[p.key]; ok {
				p.res = privalytics.AppendResult{Rows: rows, Duplicate: true}
				continue
			}
			inGroup[p.key] = int(p.rec.NumRows())
		}
		buf = append(buf, p.frame...)
		fresh = append(fresh, p)
	}
	t.mu.Unlock()
	var err error
	if len(buf) > 0 && t.log == nil {
		err = privalytics.Errorf(privalytics.EUNAVAILABLE, "the event store is closing; retry")
	} else if len(buf) > 0 {
		if _, err = t.log.Write(buf); err == nil && t.s.opt.SyncWrites {
			err = t.log.Sync()
		}
		if err != nil {
			// The log may now hold part of this group; recovery's CRC cuts it,
			// and no one was told it was stored. Start a fresh log for what follows.
			err = fmt.Errorf("events: write log: %w", err)
			t.s.log.Error("log write failed", slog.String("tenant", t.id), slog.Any("err", err))
			_ = t.openLog(t.logSeq + 1)
		}
	}
	t.mu.Lock()
	for _, p := range fresh {
		if err != nil {
			p.err = err
			continue
		}
		t.addChunk(p.rec, t.logSeq)
		rows := int(p.rec.NumRows())
		t.logRows += rows
		if p.key != "" {
			t.remember(p.key, rows)
		}
		p.res = privalytics.AppendResult{Rows: rows}
	}
	t.logBytes += int64(len(buf))
	t.mu.Unlock()
	for _, p := range group {
		close(p.done)
	}
}

func (t *tenant) stats() (Stats, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := Stats{Segments: len(t.man.Segments)}
	for _, c := range t.chunks {
		st.Rows += int(c.Record.NumRows())
	}
	for _, seg := range t.man.Segments {
		if fi, err := os.Stat(filepath.Join(t.dir, "segments", seg.File)); err == nil {
			st.SegmentBytes += fi.Size()
		}
	}
	if seqs, err := logFiles(filepath.Join(t.dir, "wal")); err == nil {
		for _, seq := range seqs {
			if fi, err := os.Stat(filepath.Join(t.dir, "wal", logName(seq))); err == nil {
				st.LogBytes += fi.Size()
			}
		}
	}
	return st, nil
}

func (t *tenant) close() error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if t.log == nil {
		return nil
	}
	err := t.log.Close()
	t.log = nil
	return err
}
