package events

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/privalytics/privalytics"
)

// Small appends must not leave queries scanning thousands of tiny records, so the
// records of the log being written are coalesced like the levels of an LSM tree
// (see FORMAT.md, "In memory"): coalesceFanIn records of one level at the tail
// merge into one of the next level, and any such run that holds chunkRows rows
// becomes a full-size record. A row is copied once per level (at most four times
// for one-row appends, twice for 1k-row ones), and the tail holds at most
// coalesceFanIn−1 records per level: about 60 records besides the full ones.
const (
	coalesceFanIn = 16
	chunkRows     = 1 << 16
	fullLevel     = 255 // a full-size record: coalesced, replayed, sealed, or appended big
)

// chunkMeta is what the tenant knows about each in-memory record.
type chunkMeta struct {
	id    uint64 // unique within the tenant: the same record may be appended twice, so records cannot name chunks
	seq   int    // log file holding the rows; 0 once they are in a segment
	level uint8  // 0 as appended, then one more per coalescing, fullLevel when full-size
}

// tenant is one tenant's log, segments and in-memory records.
type tenant struct {
	s      *Store
	id     string
	dir    string
	schema privalytics.Schema
	arrow  *arrow.Schema

	// mu guards the visible state. chunks only grows in place past the length
	// any snapshot holds (snapshots get clipped slices); coalescing and sealing
	// build a new slice. So a snapshot never changes.
	mu       sync.Mutex
	version  uint64
	chunks   []privalytics.Chunk
	meta     []chunkMeta // parallel to chunks
	subjects map[uint64]uint32
	idem     map[string]int
	idemFIFO []string
	man      manifest
	nextID   uint64 // of chunkMeta

	// wmu serialises log writes; its holder (the leader) writes every queued
	// frame with one write and one fsync (group commit).
	wmu      sync.Mutex
	qmu      sync.Mutex
	queue    []*pending
	log      fsFile
	logSeq   int
	logSize  int64        // bytes of the log acknowledged (written and fsynced); a failed write is cut back to it
	logDirty bool         // a failed write may have left bytes past logSize that are not cut yet
	lastLog  atomic.Int64 // logSeq, for manifest writes that do not hold wmu
	// logClosed is set when the store closes or the tenant is shredded:
	// appends then fail. A nil log with logClosed unset was only closed by
	// the store's LRU of open logs (fdlru.go) and reopens at the next write.
	logClosed bool
	logRows   int
	syncs     atomic.Int64
	sealing   atomic.Bool // a background seal is scheduled or running
	sealRun   sync.Mutex  // held for a whole seal: two seals at once would both take the same log records
	coalesce  sync.Mutex  // one coalescer at a time; others skip
	// compacting is set while a background compaction is scheduled or running.
	compacting atomic.Bool
	// keys are the tenant's data keys when encryption at rest is on, else nil.
	keys *tenantKeys
	// staleKeys says some file is plaintext or under an older key: compaction
	// re-encrypts it, then retires the old keys.
	staleKeys atomic.Bool
}

type pending struct {
	frame []byte
	plain []byte // the frame before sealing, when encryption is on
	key   string
	rec   arrow.Record
	done  chan struct{}
	res   privalytics.AppendResult
	err   error
}

// openTenant recovers a tenant: manifest, segments, then the logs not yet
// sealed. Its files are inspected first (recover.go); any Damage stops the load
// with every file untouched. Otherwise only what a crash leaves is cleaned up:
// a torn tail of the newest log is cut, logs a segment already holds and the
// segment of an interrupted seal are removed.
func openTenant(s *Store, id string, schema privalytics.Schema) (*tenant, error) {
	t := &tenant{s: s, id: id, dir: filepath.Join(s.dir, id), schema: schema, arrow: schema.Arrow(),
		subjects: map[uint64]uint32{}, idem: map[string]int{}, version: firstVersion()}
	var err error
	walDir := filepath.Join(t.dir, "wal")
	segDir := filepath.Join(t.dir, "segments")
	for _, d := range []string{walDir, segDir} {
		if err := fsys.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("events: tenant %s: %w", id, err)
		}
	}
	if s.opt.Encryption != nil {
		if t.keys, err = loadKeys(t.dir, id, s.opt.Encryption); err != nil {
			return nil, err
		}
		t.staleKeys.Store(len(t.keys.file.Keys) > 1) // a re-encryption was interrupted
	} else if _, err := os.Stat(filepath.Join(t.dir, "KEYS")); err == nil {
		return nil, privalytics.Errorf(privalytics.ECONFLICT, "tenant %s's events are encrypted at rest (or crypto-shredded); open the store with the master key", id)
	}
	p, err := inspect(s.dir, id, t.keys)
	if err != nil {
		return nil, err
	}
	if len(p.damage) > 0 {
		for _, d := range p.damage {
			s.log.Error("refusing to load a tenant whose files are damaged; nothing was changed", "tenant", id, "file", d.File, "problem", d.Problem, "repair", d.Repair)
		}
		return nil, p.damage
	}
	m := p.man
	// A compaction interrupted between its renames and its last manifest
	// left entries naming two versions; keep the one on disk.
	m.Segments = slices.Clone(m.Segments)
	for i, seg := range m.Segments {
		if n := seg.Next; n != nil {
			m.Segments[i].Next = nil
			if raw, err := os.ReadFile(filepath.Join(segDir, seg.File)); err == nil && int64(len(raw)) == n.Bytes && crcOf(raw) == n.CRC {
				m.Segments[i] = segment{File: seg.File, Rows: n.Rows, Bytes: n.Bytes, CRC: n.CRC}
			}
		}
	}
	t.man = m
	for _, it := range m.Idempotency {
		t.remember(it.Key, it.Rows)
	}
	// Erasures and purges not yet compacted are applied as the rows load.
	h := newHider(m)
	// Segments decode in parallel, one per core (decoding and compacting are
	// most of a restart's work); rows join memory in segment order.
	loads := make([]segmentLoad, len(m.Segments))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, seg := range m.Segments {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			loads[i] = t.loadSegment(filepath.Join(segDir, seg.File), seg, h)
		}()
	}
	wg.Wait()
	for i, seg := range m.Segments {
		if err := loads[i].err; err != nil {
			d := segmentDamage(s.dir, id, seg, err)
			s.log.Error("refusing to load a tenant whose files are damaged; nothing was changed", "tenant", id, "file", d.File, "problem", d.Problem, "repair", d.Repair)
			return nil, Damages{d}
		}
		if loads[i].bytes > 0 {
			t.man.Segments[i].Bytes, t.man.Segments[i].CRC = loads[i].bytes, loads[i].crc // an older build's entry gains its checksum
		}
		if loads[i].stale {
			t.staleKeys.Store(true) // a plaintext segment, or one under an older key: compaction re-encrypts it
		}
		for _, r := range loads[i].recs {
			t.addChunk(r, chunkMeta{seq: 0, level: fullLevel}, false)
		}
	}
	for _, l := range p.logs {
		var recs []arrow.Record
		for _, f := range l.frames {
			if !t.arrow.Equal(f.rec.Schema()) {
				return nil, fmt.Errorf("events: tenant %s log %s holds a batch of another schema: %s", id, l.path, schemaOf(f.rec))
			}
			t.logRows += int(f.rec.NumRows())
			if r, _ := h.filter(t.arrow, f.rec, l.seq); r.NumRows() > 0 {
				recs = append(recs, r)
			}
			if f.key != "" {
				t.remember(f.key, int(f.rec.NumRows()))
			}
		}
		// Replayed batches are coalesced at once, into full-size records.
		for len(recs) > 0 {
			n, rows := 0, 0
			for n < len(recs) && rows < chunkRows {
				rows += int(recs[n].NumRows())
				n++
			}
			t.addChunk(concatRecords(t.arrow, recs[:n]), chunkMeta{seq: l.seq, level: fullLevel}, true)
			recs = recs[n:]
		}
	}
	// Everything read back: now clean up what a crash left. Nothing below
	// holds an acknowledged row that is not also somewhere else.
	for _, l := range p.logs {
		if l.cut < 0 {
			continue
		}
		s.log.Warn("cutting a torn write at the end of the newest log (never acknowledged)", "tenant", id, "file", l.path,
			"reason", l.reason, "bytes_cut", l.size-l.cut, "frames_kept", len(l.frames))
		if err := truncateSync(l.path, l.cut); err != nil {
			return nil, fmt.Errorf("events: tenant %s: cut log: %w", id, err)
		}
	}
	for _, path := range p.removeLogs {
		fsys.Remove(path) // sealed; a crash came between the manifest swap and the removal
	}
	for _, f := range p.removeSegs {
		s.log.Warn("removing the segment of an interrupted seal or compaction; its rows are in the logs or the MANIFEST drops them", "tenant", id, "file", f)
		fsys.Remove(filepath.Join(segDir, f))
	}
	removeStrayImages(segDir, t.man)
	// The new log is numbered past every file seen, even removed ones, so a
	// name never stands for two different logs; the manifest records it, so a
	// log deleted later is missed, not forgotten.
	if t.man.LogsFrom == 0 {
		// Logs from here on are checked for gaps; those an older build wrote
		// may have gaps its recovery left.
		t.man.LogsFrom = p.last + 1 // 1 for a new tenant
	}
	next := p.last + 1
	if n := len(p.logs); n > 0 && p.logs[n-1].seq == p.last && (p.logs[n-1].size == 0 || p.logs[n-1].cut == 0) {
		// The newest log holds nothing: append to it rather than leave one
		// more empty file behind at every restart.
		next = p.last
	}
	t.wmu.Lock() // the LRU of open logs may close it as soon as it is listed
	err = t.openLog(next)
	t.wmu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := t.writeManifest(&t.man); err != nil {
		// Recording the new log is a safeguard (a log deleted later is then
		// missed), not a need: on a full disk the tenant must still load and
		// answer queries. The next manifest write records it.
		s.log.Warn("could not record the new log in the MANIFEST; loading anyway", "tenant", id, "err", err)
	} else if _, err := os.Stat(filepath.Join(t.dir, markerFile)); os.IsNotExist(err) {
		if err := writeAtomic(t.dir, markerFile, map[string]int{"manifest_version": manifestVersion}); err != nil {
			s.log.Warn("could not write the tenant's format marker", "tenant", id, "err", err)
		}
	}
	for i, l := range loads {
		if l.image != nil {
			t.imageAsync(t.man.Segments[i], l.image) // the image was missing or unusable
		}
	}
	if len(m.Erasures) > 0 || m.PurgePending || t.staleKeys.Load() {
		t.compactAsync() // a crash or failure interrupted compaction, or files need re-encrypting: finish it
	}
	return t, nil
}

// segmentLoad is one segment decoded for memory.
type segmentLoad struct {
	recs  []arrow.Record // compacted (privalytics.CompactRecord), hidden rows removed
	stale bool           // not under the tenant's current data key
	err   error
	// bytes and crc are set for a segment whose entry (by an older build)
	// has no checksum, so the manifest records it from now on.
	bytes int64
	crc   uint32
	// image holds the pieces read from the Parquet file when the segment's
	// load image could not be used, so it is written in the background.
	image []arrow.Record
}

// loadSegment reads, filters and compacts one segment, from its load image
// when that is valid (image.go), else from the Parquet file; it runs on its
// own goroutine, so a panic becomes its error here.
func (t *tenant) loadSegment(path string, seg segment, h *hider) (out segmentLoad) {
	defer func() {
		if r := recover(); r != nil {
			out = segmentLoad{err: fmt.Errorf("decoding panicked: %v", r)}
		}
	}()
	var recs []arrow.Record
	if seg.Bytes > 0 {
		// The segment is checked against its entry whether or not its image
		// is used: a damaged segment fails the load either way.
		if err := checkSegmentFile(path, seg); err != nil {
			return segmentLoad{err: err}
		}
		var err error
		recs, err = readImage(filepath.Dir(path), seg, t.arrow, t.keys)
		switch {
		case err == nil:
			t.s.imageLoads.Add(1)
		case errors.Is(err, os.ErrNotExist):
		default:
			t.s.log.Warn("ignoring the load image of a segment; reading the segment instead and rewriting the image", "tenant", t.id,
				"file", filepath.Join(t.id, "segments", imageName(seg.File)), "reason", err)
		}
		if err != nil {
			recs = nil
		}
	}
	if recs == nil {
		wide, err := readSegment(path, seg, t.arrow, t.keys, chunkRows)
		if err != nil {
			return segmentLoad{err: err}
		}
		for _, r := range wide {
			recs = append(recs, privalytics.CompactRecord(r))
		}
		out.image = recs
		t.s.parquetLoads.Add(1)
	}
	if t.keys != nil {
		kid, enc, err := segmentKey(path)
		out.stale = err != nil || !enc || kid != t.keys.current
	}
	if seg.Bytes == 0 {
		if raw, err := os.ReadFile(path); err == nil {
			out.bytes, out.crc = int64(len(raw)), crcOf(raw)
		}
	}
	seq := segmentSeq(seg.File)
	for _, r := range recs {
		f, n := h.filter(t.arrow, r, seq)
		if n > 0 {
			f = privalytics.CompactRecord(f)
		}
		if f.NumRows() > 0 {
			out.recs = append(out.recs, f)
		}
	}
	return out
}

// checkSegmentFile checks a segment file's size and CRC-32C against its
// manifest entry, streaming it.
func checkSegmentFile(path string, seg segment) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := crc32.New(crcTable)
	n, err := io.CopyBuffer(h, f, make([]byte, 1<<20))
	if err != nil {
		return err
	}
	if n != seg.Bytes {
		return fmt.Errorf("the file is %d bytes, the MANIFEST says %d", n, seg.Bytes)
	}
	if sum := h.Sum32(); sum != seg.CRC {
		return fmt.Errorf("checksum mismatch: CRC-32C %08x, the MANIFEST says %08x", sum, seg.CRC)
	}
	return nil
}

// imageAsync writes a segment's load image in the background, under sealRun
// and only while the manifest still names that version of the segment (a
// compaction may have rewritten it, erasing rows the pieces still hold).
func (t *tenant) imageAsync(seg segment, pieces []arrow.Record) {
	t.s.goWorker(func() {
		t.sealRun.Lock()
		defer t.sealRun.Unlock()
		t.writeImageLocked(seg, pieces)
	})
}

// writeImageLocked writes a segment's load image if the manifest still names
// that version of it and the tenant is not closed or shredded. A failure is
// logged: the image is a cache. Callers hold sealRun.
func (t *tenant) writeImageLocked(seg segment, pieces []arrow.Record) {
	t.wmu.Lock()
	closed := t.logClosed
	t.wmu.Unlock()
	t.mu.Lock()
	current := slices.ContainsFunc(t.man.Segments, func(s segment) bool {
		return s.File == seg.File && s.Bytes == seg.Bytes && s.CRC == seg.CRC && s.Next == nil
	})
	t.mu.Unlock()
	if closed || !current || seg.Bytes == 0 {
		return
	}
	if err := writeImage(filepath.Join(t.dir, "segments"), seg, pieces, t.keys); err != nil {
		t.s.log.Warn("could not write a segment's load image; the next restart reads the segment instead", "tenant", t.id, "segment", seg.File, "err", err)
		return
	}
	t.s.imageWrites.Add(1)
}

// imagePieces lays records out as the loader holds them: pieces of at most
// chunkRows rows, gathered and compacted.
func imagePieces(schema *arrow.Schema, recs []arrow.Record) []arrow.Record {
	var out []arrow.Record
	for _, r := range recs {
		n := int(r.NumRows())
		for lo := 0; lo < n; lo += chunkRows {
			refs := make([]rowRef, min(chunkRows, n-lo))
			for i := range refs {
				refs[i] = rowRef{0, uint32(lo + i)}
			}
			out = append(out, privalytics.CompactRecord(gather(schema, []arrow.Record{r}, refs)))
		}
	}
	return out
}

// removeStrayImages deletes images whose segment the manifest does not name
// (an interrupted seal's, a dropped or quarantined segment's) and temporary
// files of interrupted image writes.
func removeStrayImages(segDir string, m manifest) {
	ents, err := os.ReadDir(segDir)
	if err != nil {
		return
	}
	named := map[string]bool{}
	for _, seg := range m.Segments {
		named[imageName(seg.File)] = true
	}
	for _, e := range ents {
		n := e.Name()
		if strings.HasSuffix(n, imageSuffix+".tmp") || (strings.HasSuffix(n, imageSuffix) && !named[n]) {
			fsys.Remove(filepath.Join(segDir, n))
		}
	}
}

// openLog starts a new log file. Callers hold wmu (or are the only user).
func (t *tenant) openLog(seq int) error {
	// A torn write left in the old log must be cut before any log follows it:
	// recovery refuses a torn frame that is not at the end of the newest log.
	if t.log != nil && t.logDirty {
		if err := t.cutLogBack(); err != nil {
			return storageError(t.id, "the log could not be cut back after a failed write", err)
		}
	}
	path := filepath.Join(t.dir, "wal", logName(seq))
	f, err := fsys.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("events: open log: %w", err)
	}
	// The new name must survive a crash, or frames acknowledged into it would vanish.
	if err := syncDir(filepath.Join(t.dir, "wal")); err != nil {
		f.Close()
		return fmt.Errorf("events: open log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("events: open log: %w", err)
	}
	if t.log != nil {
		t.log.Close()
	}
	t.log, t.logSeq, t.logSize, t.logDirty = f, seq, fi.Size(), false
	t.lastLog.Store(int64(seq))
	t.s.openLogs.touch(t)
	return nil
}

// addChunk makes rec visible with its dense subject numbers; compact lays it
// out for memory (memoryChunks) first. Callers hold mu (or are the only user).
func (t *tenant) addChunk(rec arrow.Record, m chunkMeta, compact bool) {
	nums := t.subjectNumbers(rec.Column(0))
	pieces := []privalytics.Chunk{{Record: rec, Subjects: nums}}
	if compact {
		pieces = memoryChunks(t.arrow, pieces[0])
	}
	for _, c := range pieces {
		t.chunks = append(t.chunks, c)
		t.nextID++
		m.id = t.nextID
		t.meta = append(t.meta, m)
	}
	t.version++
}

// subjectNumbers returns the dense number of each row's subject, assigning
// new ones in order of first appearance. A compact subject column (a
// dictionary of its distinct values, in order of first appearance) is looked
// up once per value. Callers hold mu (or are the only user).
func (t *tenant) subjectNumbers(col arrow.Array) []uint32 {
	number := func(s uint64) uint32 {
		n, ok := t.subjects[s]
		if !ok {
			n = uint32(len(t.subjects))
			t.subjects[s] = n
		}
		return n
	}
	if d, ok := col.(*array.Dictionary); ok && d.NullN() == 0 {
		vals := privalytics.Uint64s(d.Dictionary())
		dn := make([]uint32, len(vals))
		for i, v := range vals {
			dn[i] = number(v)
		}
		nums := make([]uint32, d.Len())
		switch idx := d.Indices().(type) {
		case *array.Uint8:
			for i, k := range idx.Uint8Values() {
				nums[i] = dn[k]
			}
		case *array.Uint16:
			for i, k := range idx.Uint16Values() {
				nums[i] = dn[k]
			}
		default:
			for i, k := range privalytics.DictCodes(d) {
				nums[i] = dn[k]
			}
		}
		return nums
	}
	subj := privalytics.Uint64s(col)
	nums := make([]uint32, len(subj))
	for i, s := range subj {
		nums[i] = number(s)
	}
	return nums
}

// memoryChunks lays a full-size chunk out for memory: pieces of at most
// chunkRows rows (so every dictionary code fits 16 bits), each with its own
// dictionaries of the values it uses and its columns in their narrowest form
// (privalytics.CompactRecord).
func memoryChunks(schema *arrow.Schema, c privalytics.Chunk) []privalytics.Chunk {
	n := int(c.Record.NumRows())
	if n <= chunkRows {
		return []privalytics.Chunk{{Record: privalytics.CompactRecord(c.Record), Subjects: c.Subjects}}
	}
	out := make([]privalytics.Chunk, 0, (n+chunkRows-1)/chunkRows)
	for lo := 0; lo < n; lo += chunkRows {
		hi := min(lo+chunkRows, n)
		refs := make([]rowRef, hi-lo)
		for i := range refs {
			refs[i] = rowRef{0, uint32(lo + i)}
		}
		rec := gather(schema, []arrow.Record{c.Record}, refs)
		out = append(out, privalytics.Chunk{Record: privalytics.CompactRecord(rec), Subjects: c.Subjects[lo:hi:hi]})
	}
	return out
}

// remember records an idempotency key, forgetting the oldest past the window.
// Callers hold mu (or are the only user).
func (t *tenant) remember(key string, rows int) {
	if _, ok := t.idem[key]; ok {
		return
	}
	t.idem[key] = rows
	t.idemFIFO = append(t.idemFIFO, key)
	if len(t.idemFIFO) > t.s.opt.IdempotencyWindow {
		delete(t.idem, t.idemFIFO[0])
		t.idemFIFO[0] = ""
		t.idemFIFO = t.idemFIFO[1:]
	}
}

// commit queues p and waits until a leader has written and fsynced it.
func (t *tenant) commit(p *pending) (privalytics.AppendResult, error) {
	t.qmu.Lock()
	t.queue = append(t.queue, p)
	t.qmu.Unlock()

	// Whoever gets wmu writes everything queued so far, its own frame among it
	// unless an earlier leader already took it: the writers that queue while one
	// fsync runs share the next one.
	t.wmu.Lock()
	select {
	case <-p.done:
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
	t.coalesceAsync()
	return p.res, p.err
}

// writeGroup writes the group's frames with one write and one fsync, then makes
// them visible and answers each waiter. Duplicates (by idempotency key, also
// within the group) are answered without being written. Callers hold wmu.
func (t *tenant) writeGroup(group []*pending) {
	var buf []byte
	var fresh []*pending
	inGroup := map[string]int{}
	t.mu.Lock()
	for _, p := range group {
		if p.key != "" {
			rows, ok := t.idem[p.key]
			if !ok {
				rows, ok = inGroup[p.key]
			}
			if ok {
				p.res = privalytics.AppendResult{Rows: rows, Duplicate: true}
				continue
			}
			inGroup[p.key] = int(p.rec.NumRows())
		}
		fresh = append(fresh, p)
	}
	t.mu.Unlock()
	var err error
	if t.keys != nil {
		// A frame sealed under a key that is no longer current (a rotation came
		// between Append and now) is sealed again, here under wmu, which a
		// rotation holds while it starts a new log: no old-key frame ever lands
		// in a log started after its key was rotated out.
		cur := t.keys.currentID()
		for _, p := range fresh {
			if binary.LittleEndian.Uint32(p.frame[frameHeader:]) != cur {
				stale := p.frame
				if p.frame, err = t.keys.sealFrame(p.plain); err != nil {
					break
				}
				recycleFrame(stale)
			}
		}
	}
	if err != nil {
		err = fmt.Errorf("events: encrypt batch: %w", err)
	} else if len(fresh) == 1 {
		buf = fresh[0].frame
	} else if len(fresh) > 1 {
		total := 0
		for _, p := range fresh {
			total += len(p.frame)
		}
		if buf = frameBuf(); cap(buf) < total {
			buf = make([]byte, 0, total)
		}
		for _, p := range fresh {
			buf = append(buf, p.frame...)
		}
		defer recycleFrame(buf)
	}
	switch {
	case err != nil: // nothing is written
	case len(buf) > 0 && t.logClosed:
		err = privalytics.Errorf(privalytics.EUNAVAILABLE, "the event store is closing; retry once the server has restarted")
	case len(buf) > 0:
		if err = t.ensureLog(); err == nil {
			err = t.appendLog(buf)
		}
	}
	t.mu.Lock()
	for _, p := range fresh {
		if err != nil {
			p.err = err
			continue
		}
		rows := int(p.rec.NumRows())
		level := uint8(0)
		if rows >= chunkRows/2 {
			level = fullLevel // big enough to stand alone
		}
		t.addChunk(p.rec, chunkMeta{seq: t.logSeq, level: level}, false) // sealed soon; compacting here would hold mu
		t.logRows += rows
		if p.key != "" {
			t.remember(p.key, rows)
		}
		p.res = privalytics.AppendResult{Rows: rows}
	}
	t.mu.Unlock()
	for _, p := range group {
		recycleFrame(p.frame)
		if p.plain != nil {
			recycleFrame(p.plain)
		}
		p.frame, p.plain = nil, nil
		close(p.done)
	}
}

// appendLog writes buf at the end of the log and fsyncs it. Callers hold wmu.
//
// A failed write or fsync (a full disk, an I/O error) may leave part of buf in
// the file. Recovery would take that for a torn tail and cut it, and with it any
// frame written after it, acknowledged or not. So nothing is written after a
// failure until the file is cut back to its last acknowledged byte and that cut
// is fsynced: until then every append fails, and no acknowledged frame ever
// follows a torn one. Cutting back needs no free space, so it works on a full disk.
func (t *tenant) appendLog(buf []byte) error {
	if t.logDirty {
		if err := t.cutLogBack(); err != nil {
			return storageError(t.id, "the log could not be cut back after an earlier failed write", err)
		}
	}
	t.s.openLogs.touch(t)
	n, err := t.log.Write(buf)
	if err == nil && t.s.opt.SyncWrites {
		err = t.log.Sync()
	}
	t.syncs.Add(1)
	if err == nil {
		if t.s.opt.SyncWrites {
			// From the start of the page the previous append left partial.
			from := t.logSize &^ (4096 - 1)
			dropCached(t.log, from, t.logSize+int64(n)-from)
		}
		t.logSize += int64(n)
		return nil
	}
	t.logDirty = true
	if cerr := t.cutLogBack(); cerr != nil {
		t.s.log.Error("log write failed and the log could not be cut back; appends fail until it can be",
			slog.String("tenant", t.id), slog.String("file", t.log.Name()), slog.Any("err", err), slog.Any("cut_err", cerr))
	} else {
		t.s.log.Error("log write failed; the batches were not stored and the log was cut back to its last acknowledged frame",
			slog.String("tenant", t.id), slog.String("file", t.log.Name()), slog.Any("err", err))
	}
	return storageError(t.id, "the batch was not stored", err)
}

// cutLogBack truncates the log to the bytes acknowledged so far and fsyncs the
// cut. Callers hold wmu.
func (t *tenant) cutLogBack() error {
	if err := t.log.Truncate(t.logSize); err != nil {
		return err
	}
	if err := t.log.Sync(); err != nil {
		return err
	}
	t.logDirty = false
	return nil
}

// storageError turns a write failure into the error a client sees: ESTORAGEFULL
// (507) when the disk or a quota is full, so the sender knows to retry later, and
// an internal error otherwise.
func storageError(tenant, what string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return &privalytics.Error{Code: privalytics.ESTORAGEFULL,
			Message: fmt.Sprintf("the server's disk is full: %s; retry once the operator has freed space (nothing of this request was kept)", what)}
	}
	return fmt.Errorf("events: tenant %s: write log: %s: %w", tenant, what, err)
}

// coalesceAsync starts a coalescer unless one is running or the store is closing.
func (t *tenant) coalesceAsync() {
	if !t.coalesce.TryLock() {
		return
	}
	if !t.s.goWorker(func() {
		defer t.coalesce.Unlock()
		for t.coalesceOnce() {
		}
	}) {
		t.coalesce.Unlock()
	}
}

// goWorker runs fn in a goroutine Close waits for; false when the store is closed.
func (s *Store) goWorker(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.workers.Add(1)
	go func() {
		defer s.workers.Done()
		fn()
	}()
	return true
}

// coalesceOnce merges one run of small records of the newest log, if one is due,
// and reports whether it did anything. The merge runs without mu; appends go on
// meanwhile (after the run), and a seal may take the run's rows meanwhile, in
// which case the merged record is dropped.
func (t *tenant) coalesceOnce() bool {
	t.mu.Lock()
	n := len(t.chunks)
	if n == 0 || t.meta[n-1].seq == 0 {
		t.mu.Unlock()
		return false
	}
	seq := t.meta[n-1].seq
	// Walk back from the tail one level at a time: level 0 at the very end,
	// then level 1 before it, and so on.
	lo, hi, level := n, n, uint8(0)
	for ; level < fullLevel; level, hi = level+1, lo {
		rows := 0
		for lo > 0 && t.meta[lo-1].seq == seq && t.meta[lo-1].level == level {
			lo--
			rows += int(t.chunks[lo].Record.NumRows())
		}
		if hi-lo >= coalesceFanIn || (hi > lo && rows >= chunkRows) {
			if rows >= chunkRows {
				level = fullLevel
			} else {
				level++
			}
			break
		}
		if lo == 0 || t.meta[lo-1].seq != seq || t.meta[lo-1].level == fullLevel {
			t.mu.Unlock()
			return false
		}
	}
	if hi-lo == 1 {
		t.meta[lo].level = level // nothing to merge; meta is not shared with snapshots
		t.mu.Unlock()
		return true
	}
	old := append([]privalytics.Chunk(nil), t.chunks[lo:hi]...)
	ids := make([]uint64, len(old))
	for i, m := range t.meta[lo:hi] {
		ids[i] = m.id
	}
	t.mu.Unlock()

	recs := make([]arrow.Record, len(old))
	var subjects []uint32
	for i, c := range old {
		recs[i] = c.Record
		subjects = append(subjects, c.Subjects...)
	}
	merged := privalytics.Chunk{Record: concatRecords(t.arrow, recs), Subjects: subjects}
	if level == fullLevel {
		merged.Record = privalytics.CompactRecord(merged.Record)
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	at := -1
	for i := len(t.meta) - 1; i >= 0; i-- {
		if t.meta[i].id == ids[0] {
			at = i
			break
		}
	}
	// A seal took the run meanwhile: drop the merged record. The next append
	// starts another coalescer if one is due.
	if at < 0 || at+len(ids) > len(t.meta) {
		return false
	}
	for i, id := range ids {
		if t.meta[at+i].id != id {
			return false
		}
	}
	chunks := make([]privalytics.Chunk, 0, len(t.chunks)-len(old)+1+coalesceFanIn)
	chunks = append(append(append(chunks, t.chunks[:at]...), merged), t.chunks[at+len(old):]...)
	meta := make([]chunkMeta, 0, cap(chunks))
	t.nextID++
	meta = append(append(append(meta, t.meta[:at]...), chunkMeta{id: t.nextID, seq: seq, level: level}), t.meta[at+len(old):]...)
	// The visible rows are the same, so the version stays: cached answers remain right.
	t.chunks, t.meta = chunks, meta
	return true
}

func (t *tenant) stats() (Stats, error) {
	t.mu.Lock()
	st := Stats{Segments: len(t.man.Segments), Chunks: len(t.chunks), Subjects: len(t.subjects), LogSyncs: t.syncs.Load()}
	seen := map[*byte]bool{}
	for _, c := range t.chunks {
		st.Rows += int(c.Record.NumRows())
		st.MemoryBytes += int64(4 * len(c.Subjects))
		for _, col := range c.Record.Columns() {
			st.MemoryBytes += bufferBytes(col.Data(), seen)
		}
	}
	// A map entry of a uint64 key and uint32 value takes about 16 bytes plus
	// control bytes at 7/8 load in Go's swiss tables.
	st.MemoryBytes += int64(len(t.subjects)) * 19
	segs := append([]segment(nil), t.man.Segments...)
	t.mu.Unlock()
	for _, seg := range segs {
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

// bufferBytes sums the buffers of an array and its children and dictionary,
// counting a buffer shared by several arrays once.
func bufferBytes(d arrow.ArrayData, seen map[*byte]bool) int64 {
	var n int64
	for _, b := range d.Buffers() {
		if b == nil || b.Len() == 0 {
			continue
		}
		p := unsafe.SliceData(b.Bytes())
		if seen[p] {
			continue
		}
		seen[p] = true
		n += int64(b.Len())
	}
	for _, c := range d.Children() {
		n += bufferBytes(c, seen)
	}
	// Dictionary returns a typed nil for arrays without one.
	if dict, ok := d.Dictionary().(*array.Data); ok && dict != nil {
		n += bufferBytes(dict, seen)
	}
	return n
}

func (t *tenant) close() error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.logClosed = true
	t.s.openLogs.forget(t)
	if t.log == nil {
		return nil
	}
	err := t.log.Close()
	t.log = nil
	return err
}
