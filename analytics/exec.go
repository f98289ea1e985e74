package analytics

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/bitutil"

	"github.com/privalytics/privalytics"
)

// maxGroupSpace is the default of Limits.MaxGroupSpace.
const maxGroupSpace = 4_000_000

// execDim is a dimension resolved against a snapshot.
type execDim struct {
	dim
	labels  []string
	code    map[string]int32 // string/bool key → code
	intCode map[int64]int32  // int key → code
	stride  int
	first   bool // the first dimension: group codes start at zero
}

// Partial holds the exact, bounded per-group aggregates of one execution. It never
// leaves the process: release (called only by the Service, after the charge) turns it into a DP result.
type Partial struct {
	plan     *Plan
	dims     []execDim
	groups   int
	count    []int64
	distinct []int64
	sumI     [][]int64     // slot → group
	sumF     [][]float64   // slot → group
	n        [][]int64     // slot → group: rows with a value (means)
	sq       [][]float64   // slot → group: Σ(x − midpoint)² in natural units (variances)
	kept     [][][]float64 // slot → group → the kept values, natural units (quantiles)
	hist     [][]int64     // slot → magnitude bin, over all groups (automatic bounds' first pass)
	// Per-group bounds (see bound.go): per aggregate with them, per group,
	// the sum of customers' clamped totals in stored units (pgI: count and
	// integer sums) or natural units (pgF: float sums; means: Σ of clamped
	// averages less the midpoint), and the customers with a value (pgN: means).
	pgI [][]int64
	pgF [][]float64
	pgN [][]int64
	// tune: the histograms of automatic tuning's pass (tune.go).
	tune *tuneHist
}

// resolveDims fixes each dimension's keys: public ones as planned, data-derived
// ones from the snapshot's visible rows — those of customers not hidden (nil:
// none hidden) — sorted, so output is ordered. It runs inside the charged
// query: what it finds in the data never decides a free refusal.
func (p *Plan) resolveDims(snap *privalytics.Snapshot, hidden []bool) ([]execDim, int, error) {
	space := p.limits.MaxGroupSpace
	if space <= 0 {
		space = maxGroupSpace
	}
	out := make([]execDim, len(p.dims))
	// Data-derived time buckets are capped so that, with the public keys, they
	// always fit the group space: the cap is public, and a customer's far-away
	// event can never turn an answer into a refusal.
	public, dataTimes := 1, 0
	for _, d := range p.dims {
		switch {
		case d.public && (d.time != "" || d.hist):
			public *= max(len(d.labels), 1)
		case d.public:
			public *= max(len(d.keys), 1)
		case d.time != "":
			dataTimes++
		}
	}
	timeCap := p.limits.MaxTimeBuckets
	if dataTimes > 0 {
		timeCap = max(1, min(timeCap, int(math.Pow(float64(space/public), 1/float64(dataTimes)))))
	}
	for i, d := range p.dims {
		ed := execDim{dim: d}
		switch {
		case (d.time != "" || d.hist) && d.public:
			ed.labels = d.labels
		case d.time != "":
			lo, hi, ok := timeRange(snap, hidden)
			if !ok {
				ed.labels, ed.bounds = nil, []int64{0}
				break
			}
			ed.bounds, ed.labels = recentBuckets(d.time, lo, hi, p.loc, timeCap)
		case d.public:
			ed.labels = d.keys
		case d.typ == privalytics.TypeInt:
			set := map[int64]bool{}
			for _, ch := range snap.Chunks {
				switch c := ch.Record.Column(d.col).(type) {
				case *array.Int64:
					vals := c.Int64Values()
					visibleRows(ch, c, hidden, func(j int) { set[vals[j]] = true })
				case *array.Dictionary:
					if dict, ok := c.Dictionary().(*array.Int64); ok {
						for k, u := range usedCodes(ch, c, hidden) {
							if u {
								set[dict.Value(k)] = true
							}
						}
					}
				}
			}
			keys := make([]int64, 0, len(set))
			for k := range set {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				ed.labels = append(ed.labels, strconv.FormatInt(k, 10))
			}
		default:
			set := map[string]bool{}
			for _, ch := range snap.Chunks {
				switch c := ch.Record.Column(d.col).(type) {
				case *array.Dictionary:
					if dict, ok := c.Dictionary().(*array.String); ok {
						for k, u := range usedCodes(ch, c, hidden) {
							if u {
								set[dict.Value(k)] = true
							}
						}
					}
				case *array.Boolean:
					visibleRows(ch, c, hidden, func(j int) { set[strconv.FormatBool(c.Value(j))] = true })
				}
			}
			ed.labels = make([]string, 0, len(set))
			for k := range set {
				ed.labels = append(ed.labels, k)
			}
			sort.Strings(ed.labels)
		}
		if d.time == "" && !d.hist {
			ed.code = make(map[string]int32, len(ed.labels))
			for k, l := range ed.labels {
				ed.code[l] = int32(k)
			}
			if d.typ == privalytics.TypeInt {
				ed.intCode = make(map[int64]int32, len(ed.labels))
				for k, l := range ed.labels {
					if v, err := strconv.ParseInt(l, 10, 64); err == nil {
						ed.intCode[v] = int32(k)
					}
				}
			}
		}
		out[i] = ed
	}
	if len(out) > 0 {
		out[0].first = true
	}
	groups := 1
	for i := len(out) - 1; i >= 0; i-- {
		out[i].stride = groups
		groups *= max(len(out[i].labels), 1)
		if groups > space {
			// Only data-derived keys can get here (public ones are limited at
			// plan time), so this refusal comes after the data was read: the
			// Service charges it, and its text names no count.
			return nil, 0, invalid("query: too many groups: the group keys found in the data combine into more than %d; group by fewer or coarser keys, or list the keys", space)
		}
	}
	return out, groups, nil
}

// keyOf returns the key values of group code g.
func keyOf(dims []execDim, g int) []string {
	key := make([]string, len(dims))
	for i, d := range dims {
		key[i] = d.labels[(g/d.stride)%len(d.labels)]
	}
	return key
}

// timeRange is the span of the event times of the visible rows.
func timeRange(snap *privalytics.Snapshot, hidden []bool) (lo, hi int64, ok bool) {
	for _, ch := range snap.Chunks {
		ts := ch.Record.Column(1).(*array.Timestamp)
		vals := ts.TimestampValues()
		if hidden == nil && ts.NullN() == 0 && len(vals) > 0 {
			// Every row is visible: one tight pass, no call per row.
			if !ok {
				lo, hi, ok = int64(vals[0]), int64(vals[0]), true
			}
			for _, t := range vals {
				lo, hi = min(lo, int64(t)), max(hi, int64(t))
			}
			continue
		}
		visibleRows(ch, ts, hidden, func(j int) {
			t := int64(vals[j])
			if !ok {
				lo, hi, ok = t, t, true
			}
			lo, hi = min(lo, t), max(hi, t)
		})
	}
	return
}

// usedCodes marks the entries of c's dictionary that visible rows of ch use.
// With no one hidden and no nulls it is one pass over the codes at their stored
// width (the data-derived keys of most queries), not a call per row.
func usedCodes(ch privalytics.Chunk, c *array.Dictionary, hidden []bool) []bool {
	used := make([]bool, c.Dictionary().Len())
	if hidden == nil {
		// Null rows (a visit has no category) are skipped through the validity
		// bitmap; nil when the column has none.
		var valid []byte
		if c.NullN() > 0 {
			valid = c.NullBitmapBytes()
		}
		off := c.Data().Offset()
		switch idx := c.Indices().(type) {
		case *array.Uint8:
			markCodes(used, idx.Uint8Values(), valid, off)
			return used
		case *array.Uint16:
			markCodes(used, idx.Uint16Values(), valid, off)
			return used
		case *array.Int32:
			markCodes(used, idx.Int32Values(), valid, off)
			return used
		}
	}
	codes := privalytics.DictCodes(c)
	visibleRows(ch, c, hidden, func(j int) { used[codes[j]] = true })
	return used
}

// markCodes marks used[k] for every code k of a row that valid (a validity
// bitmap starting at bit off; nil: every row) says has a value.
// It stops once every entry is marked: a dictionary of a few dozen categories is
// usually complete within the first rows of a chunk.
func markCodes[T uint8 | uint16 | int32](used []bool, codes []T, valid []byte, off int) {
	left := len(used)
	for j, k := range codes {
		if used[k] || valid != nil && !bitutil.BitIsSet(valid, off+j) {
			continue
		}
		used[k] = true
		if left--; left == 0 {
			return
		}
	}
}

// visibleRows calls f with each row of ch that has a value in col and belongs
// to a customer not hidden.
func visibleRows(ch privalytics.Chunk, col arrow.Array, hidden []bool, f func(row int)) {
	nulls := col.NullN() > 0
	for j, s := range ch.Subjects {
		if hidden != nil && int(s) < len(hidden) && hidden[s] || nulls && col.IsNull(j) {
			continue
		}
		f(j)
	}
}

// recentBuckets enumerates the time buckets of a span found in the data
// [lo, hi] (µs), keeping only the most recent maxBuckets. Capping instead of
// refusing keeps the data out of the decision to answer: a customer's one event
// years away from the rest changes which old buckets are candidates for partition
// selection (inside the charged query), never whether the query is answered.
func recentBuckets(unit string, lo, hi int64, loc *time.Location, maxBuckets int) ([]int64, []string) {
	last := truncate(time.UnixMicro(hi).In(loc), unit)
	starts := []time.Time{last}
	for len(starts) < maxBuckets {
		t := prev(starts[len(starts)-1], unit)
		if next(t, unit).UnixMicro() <= lo {
			break
		}
		starts = append(starts, t)
	}
	slices.Reverse(starts)
	bounds := make([]int64, 0, len(starts)+1)
	labels := make([]string, 0, len(starts))
	for _, t := range starts {
		bounds = append(bounds, t.UnixMicro())
		labels = append(labels, label(t, unit))
	}
	return append(bounds, next(last, unit).UnixMicro()), labels
}

// missingInt marks a row without a value in an integer slot; clamped values never
// reach it. Float slots mark a missing value with NaN (NaN data counts as missing).
const missingInt = math.MinInt64

var (
	missingFloat   = math.Float64bits(math.NaN())
	missingIntBits = uint64(1) << 63 // missingInt's bits
)

// selectChunk applies the filters and computes the group codes of one chunk: the
// rows that pass and have a key in every dimension, and their group codes.
func (p *Plan) selectChunk(ch privalytics.Chunk, dims []execDim, sc *scratch) (sel, grp []int32) {
	rec := ch.Record
	n := int(rec.NumRows())
	sc.sel = slices.Grow(sc.sel[:0], n)[:n]
	sel = sc.sel
	if hidden := sc.hidden; hidden != nil {
		// Customers the query may not see (no consent for its purpose) are
		// gone before anything else looks at their rows.
		k := 0
		for i, s := range ch.Subjects {
			if int(s) >= len(hidden) || !hidden[s] {
				sel[k] = int32(i)
				k++
			}
		}
		sel = sel[:k]
	} else {
		for i := range sel {
			sel[i] = int32(i)
		}
	}
	for _, f := range p.filters {
		sel = applyFilter(f, rec.Column(f.col), sel)
		if len(sel) == 0 {
			return nil, nil
		}
	}
	sc.grp = slices.Grow(sc.grp[:0], len(sel))[:len(sel)]
	grp = sc.grp
	clear(grp)
	for _, d := range dims {
		groupCodes(d, rec.Column(d.col), sel, grp)
	}
	// Drop rows outside every group (null keys, keys not listed).
	k := 0
	for i, g := range grp {
		if g >= 0 {
			sel[k], grp[k] = sel[i], g
			k++
		}
	}
	return sel[:k], grp[:k]
}

// scratch is a worker's reusable buffers for one chunk at a time.
type scratch struct {
	sel, grp, dest []int32
	// partitionChunks: the selections and group codes of a run of chunks, the
	// end of each chunk's in them, and the partitions' next free slots.
	sels, grps []int32
	ends       []int
	pos        []int32
	hidden     []bool // see ExecuteHiding; shared, read-only
}

// slotValues writes the clamped value of each selected row of slot a's column to
// dst[dest[i]] (dst[i] when dest is nil) as bits (int64, or float64 bits), or the
// slot's missing marker.
func slotValues(a aggregate, col arrow.Array, sel []int32, dst []uint64, dest []int32) {
	if dest == nil {
		dest = make([]int32, len(sel))
		for i := range dest { // the identity, without a branch per row below
			dest[i] = int32(i)
		}
	}
	nulls := col.NullN() > 0
	if c, ok := col.(*array.Dictionary); ok && !a.isFloat {
		// Clamp each distinct value once, then look rows up.
		dv := c.Dictionary().(*array.Int64).Int64Values()
		clamped := make([]uint64, max(len(dv), 1))
		for j, v := range dv {
			clamped[j] = uint64(min(a.hi, max(a.lo, v)))
		}
		switch idx := c.Indices().(type) {
		case *array.Uint8:
			lookupCodes(idx.Uint8Values(), col, clamped, missingIntBits, sel, dst, dest)
		case *array.Uint16:
			lookupCodes(idx.Uint16Values(), col, clamped, missingIntBits, sel, dst, dest)
		default:
			lookupCodes(privalytics.DictCodes(c), col, clamped, missingIntBits, sel, dst, dest)
		}
		return
	}
	if !a.isFloat && !nulls {
		vals := col.(*array.Int64).Int64Values()
		for i, row := range sel {
			dst[dest[i]] = uint64(min(a.hi, max(a.lo, vals[row])))
		}
		return
	}
	if a.isFloat {
		vals := col.(*array.Float64).Float64Values()
		for i, row := range sel {
			v := vals[row]
			if (nulls && col.IsNull(int(row))) || v != v {
				dst[dest[i]] = missingFloat
				continue
			}
			dst[dest[i]] = math.Float64bits(min(a.fhi, max(a.flo, v)))
		}
		return
	}
	vals := col.(*array.Int64).Int64Values()
	for i, row := range sel {
		if nulls && col.IsNull(int(row)) {
			dst[dest[i]] = missingIntBits
			continue
		}
		dst[dest[i]] = uint64(min(a.hi, max(a.lo, vals[row])))
	}
}

// codes are the dictionary index types of in-memory chunks (see
// privalytics.CompactRecord); the loops over them are generic so each width
// gets its own compiled loop.
type codes interface{ uint8 | uint16 | int32 }

// lookupCodes writes table[code of row] for each selected row to dst[dest[i]],
// or missing for a null row.
func lookupCodes[T codes, V any](idx []T, col arrow.Array, table []V, missing V, sel []int32, dst []V, dest []int32) {
	if col.NullN() == 0 {
		for i, row := range sel {
			dst[dest[i]] = table[idx[row]]
		}
		return
	}
	for i, row := range sel {
		if col.IsNull(int(row)) {
			dst[dest[i]] = missing
		} else {
			dst[dest[i]] = table[idx[row]]
		}
	}
}

// filterCodes keeps the selected rows whose code passes mask; nulls never pass.
func filterCodes[T codes](idx []T, col arrow.Array, mask []bool, sel []int32) []int32 {
	k := 0
	if col.NullN() == 0 { // the hot path: branch-free compaction
		for _, row := range sel {
			sel[k] = row
			k += boolInt(mask[idx[row]])
		}
		return sel[:k]
	}
	for _, row := range sel {
		if col.IsValid(int(row)) && mask[idx[row]] {
			sel[k] = row
			k++
		}
	}
	return sel[:k]
}

// chunkRows are one chunk's selected rows, ordered by subject partition.
type chunkRows struct {
	off  []int32 // partition → first row; len partitions+1
	subj []uint32
	grp  []int32
	vals [][]uint64 // slot → row
}

// chunkRowsPool recycles the row buffers of finished executions: they are the
// engine's largest allocation, about 16 bytes per selected row.
var chunkRowsPool sync.Pool

// partitionChunks selects the rows of a run of chunks and orders them by
// subject partition (subject >> shift), so each partition can later be
// bounded on its own. Taking several chunks at once keeps the pieces each
// partition gathers in phase 2 few and long (chunks are small in memory).
func (p *Plan) partitionChunks(chs []privalytics.Chunk, dims []execDim, shift uint, subjects int, sc *scratch) (*chunkRows, error) {
	parts := (subjects-1)>>shift + 1
	out, _ := chunkRowsPool.Get().(*chunkRows)
	if out == nil {
		out = &chunkRows{}
	}
	out.off = slices.Grow(out.off[:0], parts+1)[:parts+1]
	clear(out.off)
	// Pass 1: select and count rows per partition, keeping each chunk's
	// selection and group codes (sc.sel and sc.grp are reused per chunk).
	sc.sels, sc.grps, sc.ends = sc.sels[:0], sc.grps[:0], sc.ends[:0]
	for _, ch := range chs {
		if len(ch.Subjects) != int(ch.Record.NumRows()) {
			chunkRowsPool.Put(out)
			return nil, privalytics.Errorf(privalytics.EINTERNAL, "analytics: a chunk has %d rows but %d subject numbers", ch.Record.NumRows(), len(ch.Subjects))
		}
		sel, grp := p.selectChunk(ch, dims, sc)
		nums := ch.Subjects
		for _, row := range sel {
			s := nums[row]
			if int(s) >= subjects {
				chunkRowsPool.Put(out)
				return nil, privalytics.Errorf(privalytics.EINTERNAL, "analytics: subject number %d is not below the snapshot's %d subjects", s, subjects)
			}
			out.off[s>>shift+1]++
		}
		sc.sels, sc.grps = append(sc.sels, sel...), append(sc.grps, grp...)
		sc.ends = append(sc.ends, len(sc.sels))
	}
	for i := 1; i <= parts; i++ {
		out.off[i] += out.off[i-1]
	}
	n := len(sc.sels)
	out.subj = slices.Grow(out.subj[:0], n)[:n]
	out.grp = slices.Grow(out.grp[:0], n)[:n]
	out.vals = slices.Grow(out.vals[:0], p.slots)[:p.slots]
	for _, a := range p.aggs {
		if a.slot >= 0 {
			out.vals[a.slot] = slices.Grow(out.vals[a.slot][:0], n)[:n]
		}
	}
	// Pass 2: place each row at its partition's next slot.
	sc.pos = append(sc.pos[:0], out.off[:parts]...)
	pos := sc.pos
	sc.dest = slices.Grow(sc.dest[:0], n)[:n]
	start := 0
	for k, ch := range chs {
		end := sc.ends[k]
		sel, grp, dest := sc.sels[start:end], sc.grps[start:end], sc.dest[start:end]
		nums := ch.Subjects
		for i, row := range sel {
			s := nums[row]
			d := pos[s>>shift]
			pos[s>>shift]++
			out.subj[d], out.grp[d], dest[i] = s, grp[i], d
		}
		for _, a := range p.aggs {
			if a.slot >= 0 {
				slotValues(a, ch.Record.Column(a.col), sel, out.vals[a.slot], dest)
			}
		}
		start = end
	}
	return out, nil
}

// workerCount is how many goroutines share n independent tasks.
func workerCount(n int) int { return max(1, min(runtime.GOMAXPROCS(0), n)) }

// parallel runs f(worker, i) for every i in [0, n) on the given number of
// workers, stopping early when ctx is done.
func parallel(ctx context.Context, workers, n int, f func(worker, i int)) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				f(w, i)
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// applyFilter keeps the selected rows that pass f. Nulls never pass.
func applyFilter(f filter, col arrow.Array, sel []int32) []int32 {
	k := 0
	keep := func(row int32, ok bool) {
		if ok && col.IsValid(int(row)) {
			sel[k] = row
			k++
		}
	}
	switch c := col.(type) {
	case *array.Dictionary:
		// Evaluate the filter once per distinct value, then per row by code.
		mask := make([]bool, max(c.Dictionary().Len(), 1))
		switch dict := c.Dictionary().(type) {
		case *array.String:
			for j := range dict.Len() {
				mask[j] = f.set[dict.Value(j)] != f.negate
			}
		case *array.Int64:
			for j, v := range dict.Int64Values() {
				mask[j] = intPass(f, v)
			}
		}
		switch idx := c.Indices().(type) {
		case *array.Uint8:
			return filterCodes(idx.Uint8Values(), col, mask, sel)
		case *array.Uint16:
			return filterCodes(idx.Uint16Values(), col, mask, sel)
		default:
			return filterCodes(privalytics.DictCodes(c), col, mask, sel)
		}
	case *array.Int64:
		vals := c.Int64Values()
		for _, row := range sel {
			keep(row, intPass(f, vals[row]))
		}
	case *array.Timestamp:
		vals := c.TimestampValues()
		for _, row := range sel {
			keep(row, intPass(f, int64(vals[row])))
		}
	case *array.Float64:
		vals := c.Float64Values()
		for _, row := range sel {
			v := vals[row]
			ok := true
			if f.isSet {
				ok = f.fltSet[v] != f.negate
			} else {
				ok = (!f.hasLo || v >= f.flo) && (!f.hasHi || v <= f.fhi)
			}
			keep(row, ok)
		}
	case *array.Boolean:
		for _, row := range sel {
			keep(row, f.set[strconv.FormatBool(c.Value(int(row)))] != f.negate)
		}
	}
	return sel[:k]
}

func intPass(f filter, v int64) bool {
	if f.isSet {
		return f.intSet[v] != f.negate
	}
	return (!f.hasLo || v >= f.lo) && (!f.hasHi || v <= f.hi)
}

// groupCodes adds d's code times its stride to grp, or sets -1 where the row has
// no key in d.
func groupCodes(d execDim, col arrow.Array, sel []int32, grp []int32) {
	stride := int32(d.stride)
	set := func(i int, code int32) {
		if code < 0 || grp[i] < 0 {
			grp[i] = -1
		} else {
			grp[i] += code * stride
		}
	}
	if c, ok := col.(*array.Dictionary); ok {
		// Each distinct value's code once, then per row by dictionary code.
		trans := make([]int32, max(c.Dictionary().Len(), 1))
		for j := range trans {
			trans[j] = -1
		}
		switch dict := c.Dictionary().(type) {
		case *array.String:
			for j := range dict.Len() {
				if code, ok := d.code[dict.Value(j)]; ok && !d.hist {
					trans[j] = code
				}
			}
		case *array.Int64:
			for j, v := range dict.Int64Values() {
				if d.hist {
					trans[j] = histCode(d.bounds, v)
				} else if code, ok := d.intCode[v]; ok {
					trans[j] = code
				}
			}
		}
		switch idx := c.Indices().(type) {
		case *array.Uint8:
			dictGroupCodes(idx.Uint8Values(), d, c, trans, sel, grp, set)
		case *array.Uint16:
			dictGroupCodes(idx.Uint16Values(), d, c, trans, sel, grp, set)
		default:
			dictGroupCodes(privalytics.DictCodes(c), d, c, trans, sel, grp, set)
		}
		return
	}
	if d.hist {
		histCodes(d, col, sel, set)
		return
	}
	switch c := col.(type) {
	case *array.Timestamp:
		vals := c.TimestampValues()
		b := d.bounds
		for i, row := range sel {
			t := int64(vals[row])
			if len(b) < 2 || t < b[0] || t >= b[len(b)-1] {
				set(i, -1)
				continue
			}
			lo, hi := 0, len(b)-1 // b[lo] <= t < b[hi]
			for hi-lo > 1 {
				mid := (lo + hi) / 2
				if b[mid] <= t {
					lo = mid
				} else {
					hi = mid
				}
			}
			set(i, int32(lo))
		}
	case *array.Int64:
		vals := c.Int64Values()
		for i, row := range sel {
			code, ok := d.intCode[vals[row]]
			if !ok || c.IsNull(int(row)) {
				code = -1
			}
			set(i, code)
		}
	case *array.Boolean:
		codes := [2]int32{-1, -1} // false, true
		for k, v := range []string{"false", "true"} {
			if code, ok := d.code[v]; ok {
				codes[k] = code
			}
		}
		for i, row := range sel {
			code := int32(-1)
			if c.IsValid(int(row)) {
				code = codes[boolInt(c.Value(int(row)))]
			}
			set(i, code)
		}
	}
}

// dictGroupCodes is groupCodes for a dictionary column, with trans the code of
// each dictionary value (-1: none).
func dictGroupCodes[T codes](idx []T, d execDim, col arrow.Array, trans []int32, sel []int32, grp []int32, set func(int, int32)) {
	if col.NullN() == 0 && d.stride == 1 && d.first {
		for i, row := range sel {
			grp[i] = trans[idx[row]]
		}
		return
	}
	for i, row := range sel {
		if col.IsNull(int(row)) {
			set(i, -1)
		} else {
			set(i, trans[idx[row]])
		}
	}
}

// histCode is the bucket [b_i, b_i+1) holding v, or -1.
func histCode(b []int64, v int64) int32 {
	if len(b) < 2 || v < b[0] || v >= b[len(b)-1] {
		return -1
	}
	lo, hi := 0, len(b)-1 // b[lo] <= v < b[hi]
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if b[mid] <= v {
			lo = mid
		} else {
			hi = mid
		}
	}
	return int32(lo)
}

// histCodes puts each row's value in its bucket [e_i, e_i+1), or none.
func histCodes(d execDim, col arrow.Array, sel []int32, set func(int, int32)) {
	search := func(n int, less func(int) bool) int32 { // largest i with edge_i <= v, for 0 <= i < n-1
		lo, hi := 0, n-1
		for hi-lo > 1 {
			mid := (lo + hi) / 2
			if less(mid) {
				lo = mid
			} else {
				hi = mid
			}
		}
		return int32(lo)
	}
	switch c := col.(type) {
	case *array.Int64:
		vals := c.Int64Values()
		for i, row := range sel {
			if c.IsNull(int(row)) {
				set(i, -1)
			} else {
				set(i, histCode(d.bounds, vals[row]))
			}
		}
	case *array.Float64:
		vals, b := c.Float64Values(), d.fbound
		for i, row := range sel {
			v := vals[row]
			if c.IsNull(int(row)) || v < b[0] || v >= b[len(b)-1] {
				set(i, -1)
				continue
			}
			set(i, search(len(b), func(k int) bool { return b[k] <= v }))
		}
	default:
		for i := range sel {
			set(i, -1)
		}
	}
}

// partitionRows is the number of selected rows a subject partition should hold
// about, so that its counting sort stays in the CPU caches.
const partitionRows = 1 << 16

// Execute runs the plan over the snapshot with per-customer contribution bounding.
//
// Design: (1) runs of chunks in parallel: filter into a selection vector, compute group
// codes, and order the selected rows by subject partition (a range of dense
// subject numbers); (2) partitions in parallel: counting-sort the partition's rows
// by subject, then bound one subject at a time (a fast path when nothing can
// exceed a bound, uniform sampling otherwise) and accumulate per group; (3) merge
// the workers' accumulators.
func Execute(ctx context.Context, p *Plan, snap *privalytics.Snapshot) (*Partial, error) {
	return ExecuteHiding(ctx, p, snap, nil)
}

// ExecuteHiding is Execute over the snapshot without the customers whose dense
// subject number n has hidden[n] set (customers whose consent does not cover
// the query's purpose). A nil hidden hides no one.
func ExecuteHiding(ctx context.Context, p *Plan, snap *privalytics.Snapshot, hidden []bool) (*Partial, error) {
	if p.tune != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "analytics: the query is tuned: call ResolveBounds before Execute")
	}
	for _, a := range p.aggs {
		if a.auto && !a.resolved {
			return nil, privalytics.Errorf(privalytics.EINTERNAL, "analytics: %s has automatic bounds: call ResolveBounds before Execute", a.info.Name)
		}
	}
	return execute(ctx, p, snap, hidden)
}

func execute(ctx context.Context, p *Plan, snap *privalytics.Snapshot, hidden []bool) (*Partial, error) {
	dims, groups, err := p.resolveDims(snap, hidden)
	if err != nil {
		return nil, err
	}
	var seed [16]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("analytics: seed: %w", err)
	}
	subjects := max(snap.Subjects, 1)
	rows := max(snap.Rows(), 1)
	// Partitions of 2^shift subjects hold about partitionRows rows, whatever
	// the snapshot's size, so phase 2's per-row cost does not grow with it.
	shift := uint(max(0, bits.Len(uint(subjects*partitionRows/rows))-1))
	parts := (subjects-1)>>shift + 1

	// Phase 1 works on runs of consecutive chunks of about unitRows rows:
	// enough runs to keep the workers busy, few enough that each partition
	// gathers a handful of long pieces rather than one short piece per chunk.
	workersAll := workerCount(len(snap.Chunks))
	unitRows := min(max(rows/(4*workersAll), partitionRows), 1<<20)
	var units [][]privalytics.Chunk
	for i, acc := 0, 0; i < len(snap.Chunks); i++ {
		n := int(snap.Chunks[i].Record.NumRows())
		if len(units) == 0 || acc+n > unitRows && acc > 0 {
			units, acc = append(units, nil), 0
		}
		units[len(units)-1] = append(units[len(units)-1], snap.Chunks[i])
		acc += n
	}

	chunks := make([]*chunkRows, len(units))
	defer func() {
		for _, c := range chunks {
			if c != nil {
				chunkRowsPool.Put(c)
			}
		}
	}()
	scratches := make([]scratch, workerCount(len(chunks)))
	for i := range scratches {
		scratches[i].hidden = hidden
	}
	errs := make([]error, len(chunks))
	if err := parallel(ctx, len(scratches), len(chunks), func(w, i int) {
		chunks[i], errs[i] = p.partitionChunks(units[i], dims, shift, subjects, &scratches[w])
	}); err != nil {
		return nil, err
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}

	workers := workerCount(parts)
	bs := make([]*bounder, workers)
	for w := range bs {
		bs[w] = &bounder{p: p, part: p.newPartial(dims, groups), rowSeed: binary.LittleEndian.Uint64(seed[:8]), groupSeed: binary.LittleEndian.Uint64(seed[8:]),
			mark: make([]uint32, groups), kmark: make([]uint32, groups), gcnt: make([]int32, groups), vals: make([][]uint64, p.slots)}
		bs[w].kinds = p.slotKinds()
		if len(p.pgAggs) > 0 || p.tunePass {
			bs[w].cell = newCellState(p, groups)
		}
	}
	if err := parallel(ctx, workers, parts, func(w, i int) {
		bs[w].partition(chunks, i, shift, subjects)
	}); err != nil {
		return nil, err
	}
	out := bs[0].part
	for _, b := range bs[1:] {
		out.merge(b.part)
	}
	return out, nil
}

func (p *Plan) newPartial(dims []execDim, groups int) *Partial {
	part := &Partial{plan: p, dims: dims, groups: groups, count: make([]int64, groups), distinct: make([]int64, groups),
		sumI: make([][]int64, p.slots), sumF: make([][]float64, p.slots), n: make([][]int64, p.slots), sq: make([][]float64, p.slots)}
	if p.tunePass {
		part.tune = &tuneHist{groups: make([]float64, sizeBins), values: make([][]float64, len(p.pgAggs)), norms: make([][]float64, len(p.pgAggs))}
		for k := range p.pgAggs {
			part.tune.values[k], part.tune.norms[k] = make([]float64, 2*tuneBins), make([]float64, tuneBins)
		}
	}
	if k := len(p.pgAggs); k > 0 {
		part.pgI, part.pgF, part.pgN = make([][]int64, k), make([][]float64, k), make([][]int64, k)
		for i := range k {
			part.pgI[i], part.pgF[i], part.pgN[i] = make([]int64, groups), make([]float64, groups), make([]int64, groups)
		}
	}
	for s := range p.slots {
		part.sumI[s], part.sumF[s], part.n[s] = make([]int64, groups), make([]float64, groups), make([]int64, groups)
		if p.slotSq[s] {
			part.sq[s] = make([]float64, groups)
		}
		if p.slotHist[s] {
			if part.hist == nil {
				part.hist = make([][]int64, p.slots)
			}
			part.hist[s] = make([]int64, p.histBins(s).n())
		}
		if p.slotKeep[s] {
			if part.kept == nil {
				part.kept = make([][][]float64, p.slots)
			}
			part.kept[s] = make([][]float64, groups)
		}
	}
	return part
}

func (a *Partial) merge(b *Partial) {
	for s := range a.hist {
		for i, c := range b.hist[s] {
			a.hist[s][i] += c
		}
	}
	if a.tune != nil {
		for j, c := range b.tune.groups {
			a.tune.groups[j] += c
		}
		for k, v := range b.tune.values {
			for j, c := range v {
				a.tune.values[k][j] += c
			}
		}
		for k, v := range b.tune.norms {
			for j, c := range v {
				a.tune.norms[k][j] += c
			}
		}
	}
	for k := range a.pgI {
		for g := range a.groups {
			a.pgI[k][g] += b.pgI[k][g]
			a.pgF[k][g] += b.pgF[k][g]
			a.pgN[k][g] += b.pgN[k][g]
		}
	}
	for g := range a.groups {
		a.count[g] += b.count[g]
		a.distinct[g] += b.distinct[g]
		for s := range a.sumI {
			a.sumI[s][g] += b.sumI[s][g]
			a.sumF[s][g] += b.sumF[s][g]
			a.n[s][g] += b.n[s][g]
			if a.sq[s] != nil {
				a.sq[s][g] += b.sq[s][g]
			}
			if a.kept != nil && a.kept[s] != nil {
				a.kept[s][g] = append(a.kept[s][g], b.kept[s][g]...)
			}
		}
	}
}

// slotKind is what the accumulator does with one slot's values.
type slotKind struct {
	float, sq, keep, hist bool
	mid, unit             float64
	bins                  magnitudeBins
}

func (p *Plan) slotKinds() []slotKind {
	k := make([]slotKind, p.slots)
	for _, a := range p.aggs {
		if a.slot >= 0 {
			k[a.slot] = slotKind{float: a.isFloat, sq: p.slotSq[a.slot], keep: p.slotKeep[a.slot], hist: p.slotHist[a.slot], mid: p.slotMid[a.slot], unit: p.slotUnit[a.slot]}
			if k[a.slot].hist {
				k[a.slot].bins = p.histBins(a.slot)
			}
		}
	}
	return k
}

// add accumulates row i of vals (slot → row) into group g.
func (pt *Partial) add(kinds []slotKind, vals [][]uint64, g int32, i int) {
	pt.count[g]++
	for s, k := range kinds {
		b := vals[s][i]
		var x float64
		if k.float {
			x = math.Float64frombits(b)
			if x != x {
				continue
			}
			pt.sumF[s][g] += x
		} else {
			if int64(b) == missingInt {
				continue
			}
			pt.sumI[s][g] += int64(b)
			if !k.sq && !k.keep && !k.hist {
				pt.n[s][g]++
				continue
			}
			x = float64(int64(b)) / k.unit
		}
		pt.n[s][g]++
		if k.sq {
			d := x - k.mid
			pt.sq[s][g] += d * d
		}
		if k.keep {
			pt.kept[s][g] = append(pt.kept[s][g], x)
		}
		if k.hist {
			pt.hist[s][k.bins.bin(x)]++
		}
	}
}

// bounder is one worker's state: it bounds a subject partition at a time.
type bounder struct {
	p                  *Plan
	part               *Partial
	kinds              []slotKind
	rowSeed, groupSeed uint64
	// One partition's rows, sorted by subject.
	cnt, pos []int32
	grp      []int32
	vals     [][]uint64
	// Per-group marks, valid for the current subject when equal to stamp.
	stamp       uint32
	mark, kmark []uint32
	gcnt        []int32
	glist       []int32
	gprio       []uint64
	scratch     []keyed
	kept        []keyed
	// cell is the current subject's totals per group, for per-group bounds;
	// nil when the query has none.
	cell *cellState
}

type keyed struct {
	grp  int32
	prio uint64
	row  int32
}

// splitmix64 is a keyed hash used for uniform sampling. This is sampling for
// contribution bounding, not DP noise: any choice that ignores the data keeps the
// sensitivity bound; a per-query secret seed makes the choice unpredictable.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// partition gathers partition i's rows from every chunk, counting-sorts them by
// subject and bounds each subject.
func (b *bounder) partition(chunks []*chunkRows, i int, shift uint, subjects int) {
	base := uint32(i) << shift
	nsub := min(1<<shift, subjects-int(base))
	b.cnt = slices.Grow(b.cnt[:0], nsub+1)[:nsub+1]
	clear(b.cnt)
	for _, c := range chunks {
		for _, s := range c.subj[c.off[i]:c.off[i+1]] {
			b.cnt[s-base+1]++
		}
	}
	for j := 1; j <= nsub; j++ {
		b.cnt[j] += b.cnt[j-1]
	}
	n := int(b.cnt[nsub])
	if n == 0 {
		return
	}
	b.pos = append(b.pos[:0], b.cnt[:nsub]...)
	b.grp = slices.Grow(b.grp[:0], n)[:n]
	for s := range b.vals {
		b.vals[s] = slices.Grow(b.vals[s][:0], n)[:n]
	}
	for _, c := range chunks {
		lo, hi := c.off[i], c.off[i+1]
		for r := lo; r < hi; r++ {
			d := b.pos[c.subj[r]-base]
			b.pos[c.subj[r]-base]++
			b.grp[d] = c.grp[r]
			switch len(c.vals) {
			case 0:
			case 1:
				b.vals[0][d] = c.vals[0][r]
			default:
				for s, v := range c.vals {
					b.vals[s][d] = v[r]
				}
			}
		}
	}
	for j := range nsub {
		if lo, hi := int(b.cnt[j]), int(b.cnt[j+1]); hi > lo {
			b.subject(base+uint32(j), lo, hi)
			if b.cell != nil {
				b.cell.flush(b.part)
			}
		}
	}
}

func (b *bounder) add(g int32, i int) {
	b.part.add(b.kinds, b.vals, g, i)
	if b.cell != nil {
		b.cell.add(b.vals, g, i)
	}
}

// subject keeps at most L0 of subject s's groups (rows lo..hi of the partition),
// chosen uniformly at random, and at most L∞ rows in each, chosen uniformly at
// random; with a total cap, a uniform sample of max_rows of those.
func (b *bounder) subject(s uint32, lo, hi int) {
	l0, linf, ltotal := int(b.p.l0), int(b.p.linf), int(b.p.ltotal)
	grp := b.grp
	stamp := b.nextStamp()
	fast := min(l0, linf)
	if ltotal > 0 {
		fast = min(fast, ltotal)
	}
	if hi-lo <= fast {
		// Nothing to sample: at most hi−lo groups and rows per group.
		for i := lo; i < hi; i++ {
			g := grp[i]
			b.add(g, i)
			if b.mark[g] != stamp {
				b.mark[g] = stamp
				b.part.distinct[g]++
			}
		}
		return
	}
	// The subject's groups and its rows in each.
	gl := b.glist[:0]
	for i := lo; i < hi; i++ {
		g := grp[i]
		if b.mark[g] != stamp {
			b.mark[g], b.gcnt[g] = stamp, 0
			gl = append(gl, g)
		}
		b.gcnt[g]++
	}
	if len(gl) > l0 {
		// The l0 groups of lowest random priority.
		gp := b.gprio[:0]
		for _, g := range gl {
			gp = append(gp, splitmix64(b.groupSeed^uint64(s)<<32^uint64(uint32(g))))
		}
		if l0 <= 8 { // a partial selection sort: cheapest for the usual small l0
			for k := range l0 {
				m := k
				for j := k + 1; j < len(gl); j++ {
					if gp[j] < gp[m] {
						m = j
					}
				}
				gl[k], gl[m], gp[k], gp[m] = gl[m], gl[k], gp[m], gp[k]
			}
		} else {
			sort.Sort(byPrio{gl, gp})
		}
		gl, b.gprio = gl[:l0], gp
	}
	b.glist = gl
	for _, g := range gl {
		b.kmark[g] = stamp
	}
	rowPrio := func(i int) uint64 { return splitmix64(b.rowSeed ^ uint64(s)<<32 ^ uint64(i-lo)) }
	ks := b.scratch[:0]
	if ltotal <= 0 {
		for i := lo; i < hi; i++ {
			g := grp[i]
			switch {
			case b.kmark[g] != stamp:
			case int(b.gcnt[g]) <= linf:
				b.add(g, i)
			default:
				ks = append(ks, keyed{grp: g, prio: rowPrio(i), row: int32(i)})
			}
		}
		for _, g := range gl {
			b.part.distinct[g]++
		}
		b.scratch = b.sampleRows(ks, linf, func(k keyed) { b.add(k.grp, int(k.row)) })
		return
	}
	// A total cap: a uniform sample, by the rows' random priorities, of what the
	// per-group bounds keep.
	for i := lo; i < hi; i++ {
		if g := grp[i]; b.kmark[g] == stamp {
			ks = append(ks, keyed{grp: g, prio: rowPrio(i), row: int32(i)})
		}
	}
	kept := b.kept[:0]
	b.scratch = b.sampleRows(ks, linf, func(k keyed) { kept = append(kept, k) })
	if len(kept) > ltotal {
		slices.SortFunc(kept, func(x, y keyed) int { return cmpU64(x.prio, y.prio) })
		kept = kept[:ltotal]
	}
	stamp = b.nextStamp() // fresh marks for the distinct groups of what is kept
	for _, k := range kept {
		b.add(k.grp, int(k.row))
		if b.mark[k.grp] != stamp {
			b.mark[k.grp] = stamp
			b.part.distinct[k.grp]++
		}
	}
	b.kept = kept
}

// nextStamp invalidates every group mark at once.
func (b *bounder) nextStamp() uint32 {
	b.stamp++
	if b.stamp == 0 { // wrapped: stale marks could match again
		clear(b.mark)
		clear(b.kmark)
		b.stamp = 1
	}
	return b.stamp
}

// sampleRows passes to keep the linf rows of lowest priority in each group of ks,
// and returns ks for reuse.
func (b *bounder) sampleRows(ks []keyed, linf int, keep func(keyed)) []keyed {
	slices.SortFunc(ks, func(x, y keyed) int {
		if x.grp != y.grp {
			return int(x.grp - y.grp)
		}
		return cmpU64(x.prio, y.prio)
	})
	for i := 0; i < len(ks); {
		j := i
		for j < len(ks) && ks[j].grp == ks[i].grp {
			j++
		}
		for _, k := range ks[i:min(j, i+linf)] {
			keep(k)
		}
		i = j
	}
	return ks
}

// byPrio sorts groups by their priorities.
type byPrio struct {
	g []int32
	p []uint64
}

func (b byPrio) Len() int           { return len(b.g) }
func (b byPrio) Less(i, j int) bool { return b.p[i] < b.p[j] }
func (b byPrio) Swap(i, j int)      { b.g[i], b.g[j], b.p[i], b.p[j] = b.g[j], b.g[i], b.p[j], b.p[i] }

func cmpU64(x, y uint64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}
