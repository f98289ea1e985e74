package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/bitutil"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/privalytics/privalytics"
)

// Erasure, rectification and retention (see FORMAT.md, "Erasure and purges"):
// a tombstone in the manifest hides rows at once, and compaction, started at
// once in the background, seals every log and rewrites every segment that
// holds hidden rows, then drops the tombstone and completes the receipt.

var _ privalytics.SubjectStore = (*Store)(nil)

// maxReceipts bounds the erasure receipts a tenant's manifest keeps (the
// manifest is rewritten whole at every seal); the audit log keeps them all.
const maxReceipts = 1_000

// hider decides which stored rows the manifest's tombstones hide.
type hider struct {
	before  int64 // µs; 0: no purge
	sets    []map[uint64]struct{}
	through []int
}

func newHider(m manifest) *hider {
	h := &hider{before: m.PurgedBefore}
	for _, e := range m.Erasures {
		set := make(map[uint64]struct{}, len(e.Subjects))
		for _, s := range e.Subjects {
			set[s] = struct{}{}
		}
		h.sets = append(h.sets, set)
		h.through = append(h.through, e.Through)
	}
	return h
}

// mayHide reports whether rows of the log or segment numbered seq may be hidden.
func (h *hider) mayHide(seq int) bool {
	if h.before != 0 {
		return true
	}
	for _, th := range h.through {
		if seq <= th {
			return true
		}
	}
	return false
}

func (h *hider) hides(seq int, subj uint64, ts int64) bool {
	if h.before != 0 && ts < h.before {
		return true
	}
	for i, set := range h.sets {
		if seq <= h.through[i] {
			if _, ok := set[subj]; ok {
				return true
			}
		}
	}
	return false
}

// filter returns rec without the rows h hides in file seq, and how many it dropped.
func (h *hider) filter(schema *arrow.Schema, rec arrow.Record, seq int) (arrow.Record, int) {
	if !h.mayHide(seq) {
		return rec, 0
	}
	subj := privalytics.Uint64s(rec.Column(0))
	ts := rec.Column(1).(*array.Timestamp).TimestampValues()
	refs := make([]rowRef, 0, len(subj))
	for i := range subj {
		if !h.hides(seq, subj[i], int64(ts[i])) {
			refs = append(refs, rowRef{0, uint32(i)})
		}
	}
	if len(refs) == len(subj) {
		return rec, 0
	}
	return gather(schema, []arrow.Record{rec}, refs), len(subj) - len(refs)
}

// segmentSeq is the log number a segment is named after.
func segmentSeq(name string) int {
	n, err := strconv.Atoi(strings.TrimSuffix(name, ".parquet"))
	if err != nil {
		return math.MaxInt // unknown names are treated as covering everything
	}
	return n
}

// hideLocked replaces the in-memory records by copies without the rows drop
// names (by dense subject number and time), giving changed records new IDs so
// a coalescer working on the old ones discards its result. It returns the new
// lists and the rows dropped, and installs nothing. Callers hold mu.
func (t *tenant) hideLocked(drop func(subject uint32, ts int64) bool) ([]privalytics.Chunk, []chunkMeta, int) {
	chunks := make([]privalytics.Chunk, 0, len(t.chunks))
	meta := make([]chunkMeta, 0, len(t.chunks))
	hidden := 0
	for i, c := range t.chunks {
		ts := c.Record.Column(1).(*array.Timestamp).TimestampValues()
		var refs []rowRef
		var nums []uint32
		for r, n := range c.Subjects {
			if drop(n, int64(ts[r])) {
				if refs == nil {
					refs = make([]rowRef, 0, len(c.Subjects))
					for k := range r {
						refs = append(refs, rowRef{0, uint32(k)})
					}
					nums = append(nums, c.Subjects[:r]...)
				}
				continue
			}
			if refs != nil {
				refs = append(refs, rowRef{0, uint32(r)})
				nums = append(nums, n)
			}
		}
		if refs == nil {
			chunks, meta = append(chunks, c), append(meta, t.meta[i])
			continue
		}
		hidden += len(c.Subjects) - len(refs)
		if len(refs) == 0 {
			continue
		}
		t.nextID++
		m := t.meta[i]
		m.id = t.nextID
		chunks = append(chunks, privalytics.Chunk{Record: privalytics.CompactRecord(gather(t.arrow, []arrow.Record{c.Record}, refs)), Subjects: nums})
		meta = append(meta, m)
	}
	return chunks, meta, hidden
}

// cloneManifest copies m deeply enough to edit its lists.
func cloneManifest(m manifest) manifest {
	m.Segments = slices.Clone(m.Segments)
	m.Erasures = slices.Clone(m.Erasures)
	m.Receipts = slices.Clone(m.Receipts)
	m.Idempotency = slices.Clone(m.Idempotency)
	return m
}

func newReceiptID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "er_" + hex.EncodeToString(b[:])
}

// SubjectEvents returns every visible event of one subject. Errors: those of Snapshot.
func (s *Store) SubjectEvents(ctx context.Context, tenantID string, schema privalytics.Schema, subject uint64) (arrow.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, err := s.tenant(tenantID, schema)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	n, ok := t.subjects[subject]
	chunks := slices.Clip(t.chunks)
	t.mu.Unlock()
	var recs []arrow.Record
	var refs []rowRef
	if ok {
		for _, c := range chunks {
			ci := -1
			for r, x := range c.Subjects {
				if x == n {
					if ci < 0 {
						ci = len(recs)
						recs = append(recs, c.Record)
					}
					refs = append(refs, rowRef{uint32(ci), uint32(r)})
				}
			}
		}
	}
	if len(recs) == 0 {
		return emptyRecord(t.arrow), nil
	}
	return gather(t.arrow, recs, refs), nil
}

// emptyRecord is a record of the schema with no rows.
func emptyRecord(schema *arrow.Schema) arrow.Record {
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	return b.NewRecord()
}

// Erase hides every event of the subjects at once (durably: the tombstone is in
// the manifest before Erase returns) and starts the compaction that removes
// them from disk. Appends wait while the manifest is written; queries wait
// while the in-memory records are filtered. Errors: EINVALID for no subjects,
// EUNAVAILABLE while closing, EINTERNAL for I/O failures.
func (s *Store) Erase(ctx context.Context, tenantID string, schema privalytics.Schema, subjects []uint64) (privalytics.ErasureReceipt, error) {
	if err := ctx.Err(); err != nil {
		return privalytics.ErasureReceipt{}, err
	}
	if len(subjects) == 0 {
		return privalytics.ErasureReceipt{}, privalytics.Errorf(privalytics.EINVALID, "name at least one subject to erase")
	}
	t, err := s.tenant(tenantID, schema)
	if err != nil {
		return privalytics.ErasureReceipt{}, err
	}
	r, err := t.erase(subjects)
	if err != nil {
		return r, err
	}
	t.compactAsync()
	return r, nil
}

func (t *tenant) erase(subjects []uint64) (privalytics.ErasureReceipt, error) {
	uniq := slices.Clone(subjects)
	slices.Sort(uniq)
	uniq = slices.Compact(uniq)
	t.sealRun.Lock() // no seal may put back records read before the erasure
	defer t.sealRun.Unlock()
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if t.logClosed {
		return privalytics.ErasureReceipt{}, privalytics.Errorf(privalytics.EUNAVAILABLE, "the event store is closing; retry once the server has restarted")
	}
	// Later appends go to a new log, which the tombstone does not cover: a
	// customer who comes back after erasure is a new customer.
	through := t.logSeq
	if err := t.openLog(through + 1); err != nil {
		return privalytics.ErasureReceipt{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	dense := map[uint32]bool{}
	for _, s := range uniq {
		if n, ok := t.subjects[s]; ok {
			dense[n] = true
		}
	}
	chunks, meta, hidden := t.hideLocked(func(n uint32, _ int64) bool { return dense[n] })
	rc := privalytics.ErasureReceipt{ID: newReceiptID(), Tenant: t.id, Subjects: len(uniq), Rows: hidden,
		RequestedAt: time.Now().UTC().Truncate(time.Millisecond), Status: privalytics.ErasurePending}
	m := cloneManifest(t.man)
	m.Erasures = append(m.Erasures, erasure{Receipt: rc.ID, Subjects: uniq, Through: through})
	m.Receipts = append(m.Receipts, rc)
	if len(m.Receipts) > maxReceipts {
		m.Receipts = m.Receipts[len(m.Receipts)-maxReceipts:]
	}
	m.Idempotency = t.idemItems()
	if err := t.writeManifest(&m); err != nil {
		return privalytics.ErasureReceipt{}, fmt.Errorf("events: erase: write manifest: %w", err)
	}
	t.man = m
	t.chunks, t.meta = chunks, meta
	t.version++ // the visible rows changed: answers cached for the old version must not be served
	return rc, nil
}

// Purge hides every event older than before at once (durably) and starts the
// compaction that removes them from disk. A purge never un-hides: the cut-off
// only moves forward. Errors: as Erase.
func (s *Store) Purge(ctx context.Context, tenantID string, schema privalytics.Schema, before time.Time) (privalytics.PurgeReceipt, error) {
	if err := ctx.Err(); err != nil {
		return privalytics.PurgeReceipt{}, err
	}
	t, err := s.tenant(tenantID, schema)
	if err != nil {
		return privalytics.PurgeReceipt{}, err
	}
	rc := privalytics.PurgeReceipt{Tenant: tenantID, Before: before.UTC(), RequestedAt: time.Now().UTC()}
	cut := before.UnixMicro()
	t.sealRun.Lock()
	t.mu.Lock()
	cut = max(cut, t.man.PurgedBefore)
	chunks, meta, hidden := t.hideLocked(func(_ uint32, ts int64) bool { return ts < cut })
	rc.Rows = hidden
	if hidden == 0 && cut == t.man.PurgedBefore {
		t.mu.Unlock()
		t.sealRun.Unlock()
		return rc, nil
	}
	m := cloneManifest(t.man)
	m.PurgedBefore, m.PurgePending = cut, true
	m.Idempotency = t.idemItems()
	if err := t.writeManifest(&m); err != nil {
		t.mu.Unlock()
		t.sealRun.Unlock()
		return privalytics.PurgeReceipt{}, fmt.Errorf("events: purge: write manifest: %w", err)
	}
	t.man = m
	t.chunks, t.meta = chunks, meta
	if hidden > 0 {
		t.version++
	}
	t.mu.Unlock()
	t.sealRun.Unlock()
	t.compactAsync()
	return rc, nil
}

// Rectify rewrites the named columns of every event of one subject: the old
// rows are erased (with a receipt, compacted like any erasure) and the
// corrected ones appended. A crash between the two leaves the subject's rows
// erased and the error returned, never the old values visible again.
// Errors: EINVALID for a column that cannot be set or a value of the wrong
// type, ENOTFOUND when the subject has no events.
func (s *Store) Rectify(ctx context.Context, tenantID string, schema privalytics.Schema, subject uint64, set map[string]any) (privalytics.ErasureReceipt, error) {
	if len(set) == 0 {
		return privalytics.ErasureReceipt{}, privalytics.Errorf(privalytics.EINVALID, "name at least one field to correct")
	}
	old, err := s.SubjectEvents(ctx, tenantID, schema, subject)
	if err != nil {
		return privalytics.ErasureReceipt{}, err
	}
	if old.NumRows() == 0 {
		return privalytics.ErasureReceipt{}, privalytics.Errorf(privalytics.ENOTFOUND, "no events are stored for this customer")
	}
	fixed, err := rectified(schema, old, set)
	if err != nil {
		return privalytics.ErasureReceipt{}, err
	}
	rc, err := s.Erase(ctx, tenantID, schema, []uint64{subject})
	if err != nil {
		return rc, err
	}
	if _, err := s.Append(ctx, tenantID, schema, privalytics.Batch{Record: fixed, IdempotencyKey: "rectify-" + rc.ID}); err != nil {
		return rc, fmt.Errorf("events: rectify: the old rows are erased (receipt %s) but the corrected ones were not stored: %w", rc.ID, err)
	}
	rc.Rows = int(fixed.NumRows())
	return rc, nil
}

// rectified returns rec with the columns in set replaced by constants.
func rectified(schema privalytics.Schema, rec arrow.Record, set map[string]any) (arrow.Record, error) {
	cols := slices.Clone(rec.Columns())
	stored := schema.Stored()
	n := int(rec.NumRows())
	for name, v := range set {
		i := slices.IndexFunc(stored, func(c privalytics.Column) bool { return c.Name == name })
		if i < 0 {
			return nil, privalytics.Errorf(privalytics.EINVALID, "field %q is not in the tenant's schema", name)
		}
		if i < 2 {
			return nil, privalytics.Errorf(privalytics.EINVALID, "field %q (the customer or the time) cannot be corrected; erase the events and send them again", name)
		}
		if v == nil && stored[i].Required {
			return nil, privalytics.Errorf(privalytics.EINVALID, "field %q is required; give a value instead of null", name)
		}
		a, err := constantArray(rec.Schema().Field(i).Type, n, v)
		if err != nil {
			return nil, privalytics.Errorf(privalytics.EINVALID, "field %q: %v", name, err)
		}
		cols[i] = a
	}
	return array.NewRecord(rec.Schema(), cols, int64(n)), nil
}

// constantArray is an array of n copies of v (nil: nulls) of type typ.
func constantArray(typ arrow.DataType, n int, v any) (arrow.Array, error) {
	var validity *memory.Buffer
	nulls := 0
	if v == nil {
		validity, nulls = memory.NewBufferBytes(make([]byte, bitutil.BytesForBits(int64(n)))), n
	}
	switch typ := typ.(type) {
	case *arrow.DictionaryType:
		str, ok := v.(string)
		if !ok && v != nil {
			return nil, fmt.Errorf("want a string, got %T", v)
		}
		b := array.NewStringBuilder(memory.DefaultAllocator)
		defer b.Release()
		b.Append(str)
		dict := b.NewStringArray()
		return array.MakeFromData(array.NewDataWithDictionary(typ, n, []*memory.Buffer{validity, valueBuffer(make([]byte, 4*n))}, nulls, 0, dict.Data().(*array.Data))), nil
	case *arrow.BooleanType:
		bits := make([]byte, bitutil.BytesForBits(int64(n)))
		switch b := v.(type) {
		case bool:
			if b {
				for i := range n {
					bitutil.SetBit(bits, i)
				}
			}
		case nil:
		default:
			return nil, fmt.Errorf("want true or false, got %T", v)
		}
		return array.MakeFromData(array.NewData(typ, n, []*memory.Buffer{validity, memory.NewBufferBytes(bits)}, nil, nulls, 0)), nil
	}
	var word uint64
	switch x := v.(type) {
	case nil:
	case int64:
		if typ.ID() != arrow.INT64 {
			return nil, fmt.Errorf("want %s, got an integer", typ)
		}
		word = uint64(x)
	case float64:
		if typ.ID() != arrow.FLOAT64 {
			return nil, fmt.Errorf("want %s, got a number with a fraction", typ)
		}
		word = math.Float64bits(x)
	case time.Time:
		if typ.ID() != arrow.TIMESTAMP {
			return nil, fmt.Errorf("want %s, got a time", typ)
		}
		word = uint64(x.UnixMicro())
	default:
		return nil, fmt.Errorf("want %s, got %T", typ, v)
	}
	vals := make([]uint64, n)
	for i := range vals {
		vals[i] = word
	}
	return array.MakeFromData(array.NewData(typ, n, []*memory.Buffer{validity, valueBuffer(arrow.Uint64Traits.CastToBytes(vals))}, nil, nulls, 0)), nil
}

// Receipt returns an erasure receipt with its current status. ENOTFOUND if
// the tenant has no receipt with that ID (or it is older than the last 1,000).
func (s *Store) Receipt(ctx context.Context, tenantID string, schema privalytics.Schema, id string) (privalytics.ErasureReceipt, error) {
	if err := ctx.Err(); err != nil {
		return privalytics.ErasureReceipt{}, err
	}
	t, err := s.tenant(tenantID, schema)
	if err != nil {
		return privalytics.ErasureReceipt{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.man.Receipts {
		if r.ID == id {
			return r, nil
		}
	}
	return privalytics.ErasureReceipt{}, privalytics.Errorf(privalytics.ENOTFOUND, "no erasure receipt %q for tenant %s", id, tenantID)
}

// Compact makes every pending erasure and purge of the tenant physical now.
func (s *Store) Compact(ctx context.Context, tenantID string, schema privalytics.Schema) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t, err := s.tenant(tenantID, schema)
	if err != nil {
		return err
	}
	return t.compactNow()
}

// CompactDue compacts every loaded tenant that has erasures, a purge or
// re-encryption pending, and returns the errors met.
func (s *Store) CompactDue(ctx context.Context) error {
	s.mu.Lock()
	var due []*tenant
	for _, slot := range s.tenants {
		select {
		case <-slot.ready:
			if slot.t != nil && slot.t.compactionDue() {
				due = append(due, slot.t)
			}
		default: // still loading: its load schedules what it needs
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, t := range due {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := t.compactNow(); err != nil {
			errs = append(errs, fmt.Errorf("tenant %s: %w", t.id, err))
		}
	}
	return errors.Join(errs...)
}

// compactAsync starts a background compaction unless one is scheduled or the
// store is closing (then the next Open finishes it).
func (t *tenant) compactAsync() {
	if t.s.manualCompaction {
		return
	}
	if !t.compacting.CompareAndSwap(false, true) {
		return
	}
	if !t.s.goWorker(func() {
		err := t.compactNow()
		if err != nil {
			t.s.log.Error("compaction failed; erased rows stay hidden and the next compaction (or open) removes them", "tenant", t.id, "err", err)
		}
		t.compacting.Store(false)
		// An erasure that came while this compaction ran is not in it; its
		// compactAsync found the flag set, so this one starts the next.
		if err == nil && t.compactionDue() {
			t.compactAsync()
		}
	}) {
		t.compacting.Store(false)
	}
}

// compactionDue reports whether erasures, a purge or old keys wait for compaction.
func (t *tenant) compactionDue() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.man.Erasures) > 0 || t.man.PurgePending || t.staleKeys.Load()
}

// compactNow seals every log (from the in-memory records, which no longer hold
// hidden rows), rewrites every segment holding hidden rows, then drops the
// tombstones and completes their receipts.
func (t *tenant) compactNow() error {
	t.sealRun.Lock()
	defer t.sealRun.Unlock()
	t.mu.Lock()
	m0 := t.man
	t.mu.Unlock()
	if len(m0.Erasures) == 0 && !m0.PurgePending && !t.staleKeys.Load() {
		return nil
	}
	reencrypt := t.staleKeys.Load() && t.keys != nil
	h := newHider(m0)
	if !m0.PurgePending {
		h.before = 0 // older purges are compacted already
	}
	if err := t.sealLocked(); err != nil {
		return err
	}
	t.mu.Lock()
	segs := slices.Clone(t.man.Segments)
	t.mu.Unlock()
	kept := segs[:0]
	var dropped []string
	rewritten := map[string][]arrow.Record{} // segment → its rows after compaction
	for _, seg := range segs {
		seq := segmentSeq(seg.File)
		path := filepath.Join(t.dir, "segments", seg.File)
		stale := false
		if reencrypt {
			kid, enc, err := segmentKey(path)
			if err != nil {
				return fmt.Errorf("events: compact %s: %w", path, err)
			}
			stale = !enc || kid != t.keys.current
		}
		if !h.mayHide(seq) && !stale {
			kept = append(kept, seg)
			continue
		}
		recs, err := readSegment(path, seg, t.arrow, t.keys, segmentRows)
		if err != nil {
			return fmt.Errorf("events: compact %s: %w", path, err)
		}
		var out []arrow.Record
		removed, rows := 0, 0
		for _, r := range recs {
			r, n := h.filter(t.arrow, r, seq)
			removed += n
			if r.NumRows() > 0 {
				out = append(out, r)
				rows += int(r.NumRows())
			}
		}
		switch {
		case removed == 0 && !stale:
			kept = append(kept, seg)
		case rows == 0:
			dropped = append(dropped, seg.File)
		default:
			// The new file replaces the old under the same name with one
			// rename (below); a crash before it leaves a stray file Open removes.
			tmp := path + ".compact"
			fsys.Remove(tmp)
			size, sum, err := writeSegment(tmp, t.arrow, out, t.keys)
			if err != nil {
				fsys.Remove(tmp)
				return fmt.Errorf("events: compact %s: %w", path, err)
			}
			seg.Next = &segVersion{Rows: rows, Bytes: size, CRC: sum}
			kept = append(kept, seg)
			rewritten[seg.File] = out
		}
	}
	// The images of rewritten and dropped segments hold the rows being
	// removed: they go before the manifest stops naming the erasures (and
	// are written again from the new files below).
	removed := false
	for _, seg := range kept {
		if seg.Next != nil {
			removeImage(filepath.Join(t.dir, "segments"), seg.File)
			removed = true
		}
	}
	for _, f := range dropped {
		removeImage(filepath.Join(t.dir, "segments"), f)
		removed = true
	}
	if removed {
		if err := syncDir(filepath.Join(t.dir, "segments")); err != nil {
			return fmt.Errorf("events: compact: %w", err)
		}
	}
	// Before a rewritten file replaces the old one, the manifest names both
	// versions (Next), so a crash between the renames and the final manifest
	// leaves every segment matching its entry.
	var renamed []segment
	for _, seg := range kept {
		if seg.Next != nil {
			renamed = append(renamed, seg)
		}
	}
	if len(renamed) > 0 {
		t.mu.Lock()
		mi := cloneManifest(t.man)
		mi.Segments = slices.Clone(t.man.Segments)
		for i, seg := range mi.Segments {
			for _, r := range renamed {
				if r.File == seg.File {
					mi.Segments[i].Next = r.Next
				}
			}
		}
		t.mu.Unlock()
		if err := t.writeManifest(&mi); err != nil {
			return fmt.Errorf("events: compact: write manifest: %w", err)
		}
		for _, seg := range renamed {
			path := filepath.Join(t.dir, "segments", seg.File)
			if err := fsys.Rename(path+".compact", path); err != nil {
				return fmt.Errorf("events: compact %s: %w", path, err)
			}
		}
		if err := syncDir(filepath.Join(t.dir, "segments")); err != nil {
			return fmt.Errorf("events: compact: %w", err)
		}
		for i, seg := range kept {
			if n := seg.Next; n != nil {
				kept[i] = segment{File: seg.File, Rows: n.Rows, Bytes: n.Bytes, CRC: n.CRC}
			}
		}
	}
	done := time.Now().UTC().Truncate(time.Millisecond)
	t.mu.Lock()
	m := cloneManifest(t.man)
	m.Segments = kept
	m.PurgePending = false
	// A crash before the dropped files are removed must not make them look
	// like segments the manifest lost.
	m.Dropped = dropped
	for _, f := range dropped {
		m.DroppedThrough = max(m.DroppedThrough, segmentSeq(f))
	}
	compacted := map[string]bool{}
	for _, e := range m0.Erasures {
		compacted[e.Receipt] = true
	}
	m.Erasures = slices.DeleteFunc(m.Erasures, func(e erasure) bool { return compacted[e.Receipt] })
	for i := range m.Receipts {
		if compacted[m.Receipts[i].ID] {
			m.Receipts[i].Status = privalytics.ErasureComplete
			m.Receipts[i].CompletedAt = &done
		}
	}
	m.Idempotency = t.idemItems()
	t.mu.Unlock()
	if err := t.writeManifest(&m); err != nil {
		return fmt.Errorf("events: compact: write manifest: %w", err)
	}
	t.mu.Lock()
	t.man = m
	t.mu.Unlock()
	for _, f := range dropped {
		fsys.Remove(filepath.Join(t.dir, "segments", f))
	}
	for _, seg := range m.Segments {
		if recs, ok := rewritten[seg.File]; ok {
			t.writeImageLocked(seg, imagePieces(t.arrow, recs))
		}
	}
	if reencrypt {
		// Every log frame and segment is now under the current key.
		if err := t.keys.retire(); err != nil {
			return fmt.Errorf("events: retire old data keys: %w", err)
		}
		t.staleKeys.Store(false)
	}
	return nil
}

// RotateKey gives the tenant a new data key without stopping ingest: appends
// after it are sealed under the new key (in a new log file), files under older
// keys stay readable, and a background compaction re-encrypts them and then
// forgets the old keys. ECONFLICT when encryption at rest is off.
func (s *Store) RotateKey(ctx context.Context, tenantID string, schema privalytics.Schema) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t, err := s.tenant(tenantID, schema)
	if err != nil {
		return err
	}
	if t.keys == nil {
		return privalytics.Errorf(privalytics.ECONFLICT, "encryption at rest is off for this store; there is no data key to rotate")
	}
	t.sealRun.Lock()
	t.wmu.Lock()
	err = t.keys.rotate()
	if err == nil && !t.logClosed {
		err = t.openLog(t.logSeq + 1)
	}
	t.wmu.Unlock()
	if err == nil {
		t.staleKeys.Store(true)
	}
	t.sealRun.Unlock()
	if err != nil {
		return fmt.Errorf("events: rotate key: %w", err)
	}
	t.compactAsync()
	return nil
}

// Shred crypto-shreds a tenant: its data keys are overwritten and removed, so
// its log and segment files (and any copy of them made without the KEYS file)
// can never be decrypted; the tenant can no longer be loaded (ECONFLICT).
// The files themselves stay until the operator deletes them. ECONFLICT when
// encryption at rest is off: plaintext files must be deleted instead.
func (s *Store) Shred(ctx context.Context, tenantID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !tenantIDPattern.MatchString(tenantID) {
		return privalytics.Errorf(privalytics.EINVALID, "tenant id %q must be lower-case letters, digits and -, 1 to 63 long", tenantID)
	}
	if s.opt.Encryption == nil {
		return privalytics.Errorf(privalytics.ECONFLICT, "encryption at rest is off: tenant %s's files are plaintext and must be deleted, not shredded", tenantID)
	}
	if t := s.loaded(tenantID); t != nil {
		t.sealRun.Lock()
		t.wmu.Lock()
		t.logClosed = true // appends now fail with EUNAVAILABLE
		t.s.openLogs.forget(t)
		if t.log != nil {
			t.log.Close()
			t.log = nil
		}
		t.wmu.Unlock()
		t.sealRun.Unlock()
		s.mu.Lock()
		delete(s.tenants, tenantID)
		s.mu.Unlock()
	}
	dir := filepath.Join(s.dir, tenantID)
	if err := fsys.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("events: shred: %w", err)
	}
	if err := shredKeys(dir); err != nil {
		return fmt.Errorf("events: shred: %w", err)
	}
	return nil
}
