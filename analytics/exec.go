package analytics

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"sync"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/privalytics/privalytics"
)

// maxGroupSpace bounds the product of all dimensions' key counts (the size of the
// per-group accumulators).
const maxGroupSpace = 4_000_000

// execDim is a dimension resolved against a snapshot.
type execDim struct {
	dim
	labels []string
	code   map[string]int32 // string/int/bool key → code
	stride int
}

// Partial holds the exact, bounded per-group aggregates of one execution. It never
// leaves the process: Release turns it into a DP result.
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
}

// rows are the filtered, grouped rows of a snapshot, flattened.
type rows struct {
	subj  []uint32
	grp   []int32
	valsI [][]int64   // slot → row (scaled, clamped)
	valsF [][]float64 // slot → row (clamped)
	has   [][]bool    // slot → row: the value is present (nil: always)
}

// resolveDims fixes each dimension's keys: public ones as planned, data-derived
// ones from the snapshot (all keys that exist, sorted, so output is ordered).
func (p *Plan) resolveDims(snap *privalytics.Snapshot) ([]execDim, int, error) {
	out := make([]execDim, len(p.dims))
	for i, d := range p.dims {
		ed := execDim{dim: d}
		switch {
		case (d.time != "" || d.hist) && d.public:
			ed.labels = d.labels
		case d.time != "":
			lo, hi, ok := timeRange(snap)
			if !ok {
				ed.labels, ed.bounds = nil, []int64{0}
				break
			}
			b, l, err := buckets(d.time, lo, hi+1, p.loc, p.limits.MaxTimeBuckets)
			if err != nil {
				return nil, 0, invalid("query: group_by %s: %v", d.time, err)
			}
			ed.bounds, ed.labels = b, l
		case d.public:
			ed.labels = d.keys
		default:
			set := map[string]bool{}
			for _, ch := range snap.Chunks {
				col := ch.Record.Column(d.col)
				switch c := col.(type) {
				case *array.Dictionary:
					dict := c.Dictionary().(*array.String)
					for k := range dict.Len() {
						set[dict.Value(k)] = true
					}
				case *array.Int64:
					for j, v := range c.Int64Values() {
						if c.IsValid(j) {
							set[strconv.FormatInt(v, 10)] = true
						}
					}
				}
			}
			ed.labels = make([]string, 0, len(set))
			for k := range set {
				ed.labels = append(ed.labels, k)
			}
			if d.typ == privalytics.TypeInt {
				sort.Slice(ed.labels, func(a, b int) bool {
					x, _ := strconv.ParseInt(ed.labels[a], 10, 64)
					y, _ := strconv.ParseInt(ed.labels[b], 10, 64)
					return x < y
				})
			} else {
				sort.Strings(ed.labels)
			}
		}
		if d.time == "" && !d.hist {
			ed.code = make(map[string]int32, len(ed.labels))
			for k, l := range ed.labels {
				ed.code[l] = int32(k)
			}
		}
		out[i] = ed
	}
	groups := 1
	for i := len(out) - 1; i >= 0; i-- {
		out[i].stride = groups
		groups *= max(len(out[i].labels), 1)
		if groups > maxGroupSpace {
			return nil, 0, invalid("query: too many groups: the group keys combine into more than %d; group by fewer or coarser keys", maxGroupSpace)
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

func timeRange(snap *privalytics.Snapshot) (lo, hi int64, ok bool) {
	for _, ch := range snap.Chunks {
		for _, t := range ch.Record.Column(1).(*array.Timestamp).TimestampValues() {
			if !ok {
				lo, hi, ok = int64(t), int64(t), true
			}
			lo, hi = min(lo, int64(t)), max(hi, int64(t))
		}
	}
	return
}

// scan filters and groups every chunk in parallel and flattens the rows.
func (p *Plan) scan(ctx context.Context, snap *privalytics.Snapshot, dims []execDim) (*rows, error) {
	parts := make([]*rows, len(snap.Chunks))
	work := make(chan int)
	var wg sync.WaitGroup
	errs := make([]error, len(snap.Chunks))
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if ctx.Err() != nil {
					errs[i] = ctx.Err()
					continue
				}
				parts[i], errs[i] = p.scanChunk(snap.Chunks[i], dims)
			}
		}()
	}
	for i := range snap.Chunks {
		work <- i
	}
	close(work)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	n := 0
	for _, r := range parts {
		n += len(r.subj)
	}
	out := &rows{subj: make([]uint32, 0, n), grp: make([]int32, 0, n), valsI: make([][]int64, p.slots), valsF: make([][]float64, p.slots), has: make([][]bool, p.slots)}
	for _, a := range p.aggs {
		if a.slot < 0 {
			continue
		}
		if a.isFloat {
			out.valsF[a.slot] = make([]float64, 0, n)
		} else {
			out.valsI[a.slot] = make([]int64, 0, n)
		}
		out.has[a.slot] = make([]bool, 0, n)
	}
	for _, r := range parts {
		out.subj = append(out.subj, r.subj...)
		out.grp = append(out.grp, r.grp...)
		for s := range p.slots {
			if out.valsF[s] != nil {
				out.valsF[s] = append(out.valsF[s], r.valsF[s]...)
			} else {
				out.valsI[s] = append(out.valsI[s], r.valsI[s]...)
			}
			out.has[s] = append(out.has[s], r.has[s]...)
		}
	}
	return out, nil
}

// scanChunk applies the filters, computes group codes and materialises values.
func (p *Plan) scanChunk(ch privalytics.Chunk, dims []execDim) (*rows, error) {
	rec := ch.Record
	n := int(rec.NumRows())
	sel := make([]int32, n)
	for i := range sel {
		sel[i] = int32(i)
	}
	for _, f := range p.filters {
		sel = applyFilter(f, rec.Column(f.col), sel)
		if len(sel) == 0 {
			break
		}
	}
	grp := make([]int32, len(sel))
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
	sel, grp = sel[:k], grp[:k]
	r := &rows{subj: make([]uint32, len(sel)), grp: grp, valsI: make([][]int64, p.slots), valsF: make([][]float64, p.slots), has: make([][]bool, p.slots)}
	for i, row := range sel {
		r.subj[i] = ch.Subjects[row]
	}
	for _, a := range p.aggs {
		if a.slot < 0 {
			continue
		}
		col := rec.Column(a.col)
		has := make([]bool, len(sel))
		if a.isFloat {
			vals := col.(*array.Float64).Float64Values()
			out := make([]float64, len(sel))
			for i, row := range sel {
				if col.IsValid(int(row)) {
					out[i], has[i] = min(a.fhi, max(a.flo, vals[row])), true
				}
			}
			r.valsF[a.slot] = out
		} else {
			vals := col.(*array.Int64).Int64Values()
			out := make([]int64, len(sel))
			for i, row := range sel {
				if col.IsValid(int(row)) {
					out[i], has[i] = min(a.hi, max(a.lo, vals[row])), true
				}
			}
			r.valsI[a.slot] = out
		}
		r.has[a.slot] = has
	}
	return r, nil
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
		dict := c.Dictionary().(*array.String)
		mask := make([]bool, dict.Len())
		for j := range mask {
			mask[j] = f.set[dict.Value(j)] != f.negate
		}
		idx := c.Indices().(*array.Int32).Int32Values()
		for _, row := range sel {
			keep(row, mask[idx[row]])
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
	if d.hist {
		histCodes(d, col, sel, set)
		return
	}
	switch c := col.(type) {
	case *array.Dictionary:
		dict := c.Dictionary().(*array.String)
		trans := make([]int32, dict.Len())
		for j := range trans {
			code, ok := d.code[dict.Value(j)]
			if !ok {
				code = -1
			}
			trans[j] = code
		}
		idx := c.Indices().(*array.Int32).Int32Values()
		for i, row := range sel {
			if c.IsNull(int(row)) {
				set(i, -1)
			} else {
				set(i, trans[idx[row]])
			}
		}
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
			code, ok := d.code[strconv.FormatInt(vals[row], 10)]
			if !ok || c.IsNull(int(row)) {
				code = -1
			}
			set(i, code)
		}
	case *array.Boolean:
		for i, row := range sel {
			code := int32(-1)
			if c.IsValid(int(row)) {
				code = d.code[strconv.FormatBool(c.Value(int(row)))]
			}
			set(i, code)
		}
	}
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
		vals, b := c.Int64Values(), d.bounds
		for i, row := range sel {
			v := vals[row]
			if c.IsNull(int(row)) || v < b[0] || v >= b[len(b)-1] {
				set(i, -1)
				continue
			}
			set(i, search(len(b), func(k int) bool { return b[k] <= v }))
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

// Execute runs the plan over the snapshot with per-customer contribution bounding.
func Execute(ctx context.Context, p *Plan, snap *privalytics.Snapshot) (*Partial, error) {
	dims, groups, err := p.resolveDims(snap)
	if err != nil {
		return nil, err
	}
	r, err := p.scan(ctx, snap, dims)
	if err != nil {
		return nil, err
	}
	// Counting sort of the rows by dense subject number.
	ns := snap.Subjects + 1
	off := make([]uint32, ns+1)
	for _, s := range r.subj {
		off[s+1]++
	}
	for i := 1; i <= ns; i++ {
		off[i] += off[i-1]
	}
	order := make([]uint32, len(r.subj))
	next := slices.Clone(off[:ns])
	for i, s := range r.subj {
		order[next[s]] = uint32(i)
		next[s]++
	}
	var seed [16]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("analytics: seed: %w", err)
	}
	rowSeed, groupSeed := binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])

	workers := runtime.GOMAXPROCS(0)
	partials := make([]*Partial, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			part := p.newPartial(dims, groups)
			b := bounder{p: p, r: r, part: part, rowSeed: rowSeed, groupSeed: groupSeed}
			for s := w; s < ns; s += workers {
				if s%65536 == 0 && ctx.Err() != nil {
					return
				}
				if lo, hi := off[s], off[s+1]; hi > lo {
					b.subject(uint32(s), order[lo:hi])
				}
			}
			partials[w] = part
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := partials[0]
	for _, q := range partials[1:] {
		out.merge(q)
	}
	return out, nil
}

func (p *Plan) newPartial(dims []execDim, groups int) *Partial {
	part := &Partial{plan: p, dims: dims, groups: groups, count: make([]int64, groups), distinct: make([]int64, groups),
		sumI: make([][]int64, p.slots), sumF: make([][]float64, p.slots), n: make([][]int64, p.slots), sq: make([][]float64, p.slots)}
	for s := range p.slots {
		part.sumI[s], part.sumF[s], part.n[s] = make([]int64, groups), make([]float64, groups), make([]int64, groups)
		if p.slotSq[s] {
			part.sq[s] = make([]float64, groups)
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

// bounder applies the contribution bounds to one subject's rows at a time.
type bounder struct {
	p                  *Plan
	r                  *rows
	part               *Partial
	rowSeed, groupSeed uint64
	scratch            []keyed
	kept               []keyed
	groupsOf           []int32
}

type keyed struct {
	grp  int32
	prio uint64
	row  uint32
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

func (b *bounder) add(g int32, row uint32) {
	b.part.add(b.p, b.r, g, row)
}

// add accumulates one kept row into group g.
func (pt *Partial) add(p *Plan, r *rows, g int32, row uint32) {
	pt.count[g]++
	for s := range p.slots {
		if !r.has[s][row] {
			continue
		}
		pt.n[s][g]++
		var x float64
		if r.valsF[s] != nil {
			x = r.valsF[s][row]
			pt.sumF[s][g] += x
		} else {
			pt.sumI[s][g] += r.valsI[s][row]
			x = float64(r.valsI[s][row]) / p.slotUnit[s]
		}
		if pt.sq[s] != nil {
			d := x - p.slotMid[s]
			pt.sq[s][g] += d * d
		}
		if pt.kept != nil && pt.kept[s] != nil {
			pt.kept[s][g] = append(pt.kept[s][g], x)
		}
	}
}

// subject keeps at most L0 groups of the subject, chosen uniformly at random, and
// at most L∞ rows in each, chosen uniformly at random.
func (b *bounder) subject(s uint32, rowsOf []uint32) {
	l0, linf := int(b.p.l0), int(b.p.linf)
	grp := b.r.grp
	fast := min(l0, linf)
	if b.p.ltotal > 0 {
		fast = min(fast, int(b.p.ltotal))
	}
	if len(rowsOf) <= fast {
		// Nothing to sample: at most len(rowsOf) groups and rows per group.
		b.groupsOf = b.groupsOf[:0]
		for _, row := range rowsOf {
			g := grp[row]
			b.add(g, row)
			if !slices.Contains(b.groupsOf, g) {
				b.groupsOf = append(b.groupsOf, g)
				b.part.distinct[g]++
			}
		}
		return
	}
	ks := b.scratch[:0]
	base := b.rowSeed ^ uint64(s)<<32
	for j, row := range rowsOf {
		ks = append(ks, keyed{grp: grp[row], prio: splitmix64(base ^ uint64(j)), row: row})
	}
	slices.SortFunc(ks, func(x, y keyed) int {
		if x.grp != y.grp {
			return int(x.grp - y.grp)
		}
		if x.prio < y.prio {
			return -1
		}
		if x.prio > y.prio {
			return 1
		}
		return 0
	})
	// Distinct groups of the subject, with their runs in ks.
	type run struct {
		grp        int32
		start, end int
		prio       uint64
	}
	var runs []run
	for i := 0; i < len(ks); {
		j := i
		for j < len(ks) && ks[j].grp == ks[i].grp {
			j++
		}
		runs = append(runs, run{grp: ks[i].grp, start: i, end: j, prio: splitmix64(b.groupSeed ^ uint64(s)<<32 ^ uint64(uint32(ks[i].grp)))})
		i = j
	}
	if len(runs) > l0 {
		slices.SortFunc(runs, func(x, y run) int {
			if x.prio < y.prio {
				return -1
			}
			if x.prio > y.prio {
				return 1
			}
			return 0
		})
		runs = runs[:l0]
	}
	if b.p.ltotal <= 0 {
		for _, rn := range runs {
			b.part.distinct[rn.grp]++
			for _, k := range ks[rn.start:min(rn.end, rn.start+linf)] {
				b.add(rn.grp, k.row)
			}
		}
		b.scratch = ks
		return
	}
	// A total cap: a uniform sample, by the rows' random priorities, of what the
	// per-group bounds kept.
	kept := b.kept[:0]
	for _, rn := range runs {
		kept = append(kept, ks[rn.start:min(rn.end, rn.start+linf)]...)
	}
	if len(kept) > int(b.p.ltotal) {
		slices.SortFunc(kept, func(x, y keyed) int {
			if x.prio < y.prio {
				return -1
			}
			if x.prio > y.prio {
				return 1
			}
			return 0
		})
		kept = kept[:b.p.ltotal]
	}
	b.groupsOf = b.groupsOf[:0]
	for _, k := range kept {
		b.add(k.grp, k.row)
		if !slices.Contains(b.groupsOf, k.grp) {
			b.groupsOf = append(b.groupsOf, k.grp)
			b.part.distinct[k.grp]++
		}
	}
	b.scratch, b.kept = ks, kept
}
