package ingest

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/privalytics/privalytics"
)

// sourcePlan is a mapping resolved against one source's columns: the row steps
// (fill-down, skip rules) and one fieldPlan per target field.
type sourcePlan struct {
	fields    []fieldPlan
	fill      *filler // nil without fill_down; the state at the start of the source
	skips     []skipPlan
	skipEmpty bool
}

// fieldPlan is one target field's resolved source.
type fieldPlan struct {
	target   int
	name     string
	src      int   // source column index; -1 for a constant
	with     []int // further columns appended with a space
	times    int   // -1 when not multiplying
	fs       FieldSource
	loc      *time.Location
	layouts  []string
	months   []bool   // per layout: normalise month names first
	prefixes []string // longest first
	mapped   map[string]string
	negate   *condPlan
	// plain: the field is its source cell as it stands (no constant, with,
	// times, strip, prefix, map, negate_if or format), as in every import
	// without a mapping; the row loop then reads the cell directly.
	plain bool
}

// columns lists every source column the mapping reads, in a stable order: the
// keys an NDJSON line is read by.
func (m *Mapping) columns() []string {
	var out []string
	seen := map[string]bool{}
	add := func(cs ...string) {
		for _, c := range cs {
			if c != "" && !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	names := make([]string, 0, len(m.Fields))
	for n := range m.Fields {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := m.Fields[n]
		add(f.Column, f.Times)
		add(f.With...)
		if f.NegateIf != nil {
			add(f.NegateIf.Column)
		}
	}
	if m.FillDown != nil {
		add(m.FillDown.Group)
		add(m.FillDown.Columns...)
	}
	for _, s := range m.Skip {
		add(s.Column)
	}
	return out
}

// plan resolves a mapping (nil: identity) against the source's column names.
// It reports every problem at once, naming the file's columns.
func (c *Converter) plan(m *Mapping, header []string) (*sourcePlan, error) {
	if m == nil {
		m = &Mapping{}
	} else if err := m.Validate(); err != nil {
		return nil, err
	}
	// Columns are found by their new name (Rename, SnakeCase) or their own.
	names := make([]string, len(header))
	pos := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(h)
		names[i] = h
		if to, ok := m.Rename[h]; ok {
			names[i] = to
		} else if m.SnakeCase {
			names[i] = snakeCase(h)
		}
		if _, dup := pos[h]; !dup {
			pos[h] = i
		}
	}
	for i, n := range names {
		pos[n] = i
	}
	var problems []string
	find := func(where, col string) int {
		i, ok := pos[col]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: source column %q is not in the file (its columns: %s)", where, col, columnList(header)))
			return -1
		}
		return i
	}
	fields := m.Fields
	if len(fields) == 0 {
		fields = map[string]FieldSource{}
		for _, n := range names {
			fields[n] = FieldSource{Column: n}
		}
	}
	sp := &sourcePlan{skipEmpty: m.SkipMissingSubject}
	if fd := m.FillDown; fd != nil {
		g := find("fill_down group", fd.Group)
		cols := make([]int, 0, len(fd.Columns))
		for _, col := range fd.Columns {
			cols = append(cols, find("fill_down", col))
		}
		sp.fill = newFiller(g, cols)
	}
	cond := func(where string, cd *Condition) *condPlan {
		return &condPlan{src: find(where, cd.Column), in: cd.In, notIn: cd.NotIn, empty: cd.Empty}
	}
	for i := range m.Skip {
		sp.skips = append(sp.skips, skipPlan{condPlan: *cond(fmt.Sprintf("skip[%d]", i), &m.Skip[i].Condition), reason: m.Skip[i].Reason})
	}
	defaultLoc := time.UTC
	if m.TimeZone != "" {
		defaultLoc, _ = time.LoadLocation(m.TimeZone) // checked by Validate
	}
	targets := make([]string, 0, len(fields))
	for n := range fields {
		targets = append(targets, n)
	}
	sort.Strings(targets)
	for _, name := range targets {
		fs := fields[name]
		target, ok := c.byName[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%q is not a field of the schema (fields: %s); map it to one or leave it out", name, strings.Join(c.names, ", ")))
			continue
		}
		where := fmt.Sprintf("field %q", name)
		p := fieldPlan{target: target, name: name, src: -1, times: -1, fs: fs, loc: defaultLoc}
		typ := c.cols[target].Type
		if fs.Const == "" {
			p.src = find(where, fs.Column)
		}
		for _, w := range fs.With {
			p.with = append(p.with, find(where+" with", w))
		}
		if fs.Times != "" {
			p.times = find(where+" times", fs.Times)
			if typ != privalytics.TypeInt && typ != privalytics.TypeDecimal && typ != privalytics.TypeFloat {
				problems = append(problems, fmt.Sprintf("%s: times applies to int, decimal and float fields", where))
			}
		}
		if fs.NegateIf != nil {
			p.negate = cond(where+" negate_if", fs.NegateIf)
			if typ != privalytics.TypeInt && typ != privalytics.TypeDecimal && typ != privalytics.TypeFloat {
				problems = append(problems, fmt.Sprintf("%s: negate_if applies to int, decimal and float fields", where))
			}
		}
		if fs.Format != "" {
			if typ != privalytics.TypeTimestamp {
				problems = append(problems, fmt.Sprintf("%s: format applies to timestamp fields", where))
			}
			for _, l := range append([]string{fs.Format}, fs.Formats...) {
				p.layouts = append(p.layouts, l)
				p.months = append(p.months, strings.Contains(l, "Jan") && !strings.Contains(l, "January"))
				if !strings.Contains(l, "2006") && !strings.Contains(l, "06") && fs.Year == 0 {
					problems = append(problems, fmt.Sprintf("%s: the layout %q has no year; set year (e.g. \"year\": 2024) to say which", where, l))
				}
			}
		}
		if fs.TimeZone != "" {
			p.loc, _ = time.LoadLocation(fs.TimeZone) // checked by Validate
		}
		for k := range fs.Prefix {
			p.prefixes = append(p.prefixes, k)
		}
		sort.Slice(p.prefixes, func(a, b int) bool {
			pa, pb := p.prefixes[a], p.prefixes[b]
			return len(pa) > len(pb) || (len(pa) == len(pb) && pa < pb)
		})
		if len(fs.Map) > 0 {
			p.mapped = make(map[string]string, 2*len(fs.Map))
			for k, v := range fs.Map {
				p.mapped[strings.ToLower(strings.TrimSpace(k))] = v
			}
			for k, v := range fs.Map { // the exact spelling, found without lower-casing
				p.mapped[strings.TrimSpace(k)] = v
			}
		}
		p.plain = p.src >= 0 && len(p.with) == 0 && p.times < 0 && fs.Strip == "" && len(p.prefixes) == 0 &&
			p.mapped == nil && p.negate == nil && len(p.layouts) == 0
		sp.fields = append(sp.fields, p)
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, privalytics.Errorf(privalytics.EINVALID, "mapping: %s", strings.Join(problems, "; "))
	}
	// The subject goes first, so a row without one is skipped before anything is set.
	sort.SliceStable(sp.fields, func(a, b int) bool { return sp.fields[a].target == 0 && sp.fields[b].target != 0 })
	return sp, nil
}

func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// timeMemo remembers the last text timestamp parsed per field: rows of one order
// share their time, and time.ParseInLocation is the costliest step of a row.
type timeMemo struct {
	text string
	us   int64
}

// text is the field's source text of a row, before it is read as its type.
func (p *fieldPlan) text(row []string) (string, error) {
	s := p.fs.Const
	if p.src >= 0 {
		s = row[p.src]
	}
	if len(p.with) > 0 {
		var b strings.Builder
		b.WriteString(strings.TrimSpace(s))
		for _, w := range p.with {
			if v := strings.TrimSpace(row[w]); v != "" {
				b.WriteByte(' ')
				b.WriteString(v)
			}
		}
		s = b.String()
	}
	s = p.strip(s)
	switch {
	case len(p.prefixes) > 0:
		out := p.fs.Default
		for _, k := range p.prefixes {
			if strings.HasPrefix(s, k) {
				out = p.fs.Prefix[k]
				break
			}
		}
		s = out
	case p.mapped != nil:
		t := strings.TrimSpace(s)
		out, ok := p.mapped[t]
		if !ok {
			out, ok = p.mapped[strings.ToLower(t)]
		}
		if !ok {
			if p.fs.Default == "" {
				return "", fmt.Errorf("%q is not one of the mapping's map keys (%s); add it to map or set a default", t, mapKeys(p.fs.Map))
			}
			out = p.fs.Default
		}
		s = out
	}
	if p.negate != nil && s != "" && p.times < 0 && p.negate.match(row) {
		s = negateText(strings.TrimSpace(s))
	}
	return s, nil
}

// strip removes the characters of FieldSource.Strip from s.
func (p *fieldPlan) strip(s string) string {
	if p.fs.Strip == "" || !strings.ContainsAny(s, p.fs.Strip) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune(p.fs.Strip, r) {
			return -1
		}
		return r
	}, s)
}

func mapKeys(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, strconv.Quote(k))
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

// negateText flips the sign of a number written as text.
func negateText(s string) string {
	switch {
	case strings.HasPrefix(s, "-"):
		return s[1:]
	case strings.HasPrefix(s, "+"):
		return "-" + s[1:]
	}
	return "-" + s
}

// value computes the field's value from a source row of text cells.
func (p *fieldPlan) value(c *Converter, row []string, memo *timeMemo, v *value) error {
	s, err := p.text(row)
	if err != nil {
		return err
	}
	if s == "" {
		*v = value{kind: kindNull}
		return nil
	}
	col := &c.cols[p.target]
	switch {
	case p.times >= 0:
		m1, s1, err := parseDecimal(bytesOf(strings.TrimSpace(s)))
		if err != nil {
			return fmt.Errorf("%v, got %q", err, strings.TrimSpace(s))
		}
		other := strings.TrimSpace(p.strip(row[p.times]))
		m2, s2, err := parseDecimal(bytesOf(other))
		if err != nil {
			return fmt.Errorf("%s: %v, got %q", p.fs.Times, err, other)
		}
		prod, ok := mulExact(m1, m2)
		if !ok {
			return errors.New("the product is too large")
		}
		if p.negate != nil && p.negate.match(row) {
			prod = -prod
		}
		if col.Type == privalytics.TypeFloat {
			*v = value{kind: kindText, raw: []byte(strconv.FormatFloat(float64(prod)/math.Pow10(s1+s2), 'g', -1, 64))}
			return nil
		}
		n, err := rescale(prod, s1+s2, col.Scale)
		if err != nil {
			return fmt.Errorf("%s × %s = %s × %s %v", p.fs.Column, p.fs.Times, strings.TrimSpace(s), other, err)
		}
		*v = value{kind: kindScaled, n: n}
		return nil
	case col.Type == privalytics.TypeTimestamp && len(p.layouts) > 0:
		if memo.text == s {
			*v = value{kind: kindTime, n: memo.us}
			return nil
		}
		us, err := p.parseTime(strings.TrimSpace(s))
		if err != nil {
			return err
		}
		memo.text, memo.us = strings.Clone(s), us
		*v = value{kind: kindTime, n: us}
		return nil
	}
	*v = value{kind: kindText, raw: bytesOf(s)}
	return nil
}

// parseTime tries the layouts in order.
func (p *fieldPlan) parseTime(s string) (int64, error) {
	for i, l := range p.layouts {
		in := s
		if p.months[i] {
			in = normaliseMonths(s)
		}
		t, err := time.ParseInLocation(l, in, p.loc)
		if err != nil {
			continue
		}
		if t.Year() == 0 && p.fs.Year != 0 {
			t = time.Date(p.fs.Year, t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), p.loc)
		}
		return t.UnixMicro(), nil
	}
	if len(p.layouts) == 1 {
		return 0, fmt.Errorf("must be a time like %q (the mapping's format), got %q", p.layouts[0], s)
	}
	return 0, fmt.Errorf("must be a time in one of the mapping's formats %q, got %q", p.layouts, s)
}

// mulExact multiplies exactly, or reports that the product overflows int64.
func mulExact(a, b int64) (int64, bool) {
	ua, ub := uint64(a), uint64(b)
	if a < 0 {
		ua = -ua
	}
	if b < 0 {
		ub = -ub
	}
	hi, lo := bits.Mul64(ua, ub)
	if hi != 0 || lo > math.MaxInt64 {
		return 0, false
	}
	if (a < 0) != (b < 0) {
		return -int64(lo), true
	}
	return int64(lo), true
}

// rowSink feeds source rows (as text cells) through the plan into batches.
type rowSink struct {
	c         *Converter
	plan      *sourcePlan
	fill      *filler // this sink's own fill-down state
	memo      []timeMemo
	batchRows int
	emit      func(arrow.Record) error
	b         *batch
	rep       ImportReport
	// byColumn: the plan can be converted a column at a time; absent: the
	// stored columns no field fills.
	byColumn bool
	absent   uint64
	// observe, when set, sees every source row after fill-down and whether it
	// was kept (the dry run's statistics).
	observe func(row []string, kept bool)
}

func newRowSink(c *Converter, plan *sourcePlan, batchRows int, emit func(arrow.Record) error) *rowSink {
	r := &rowSink{c: c, plan: plan, fill: plan.fill.clone(), memo: make([]timeMemo, len(plan.fields)),
		batchRows: batchRows, emit: emit, b: c.newBatch(batchRows)}
	// A plan whose every field is a cell as it stands, with no row steps, can
	// be converted a column at a time (see addBlock).
	r.byColumn = plan.fill == nil && len(plan.skips) == 0
	var targets uint64
	for _, p := range plan.fields {
		if !p.plain || targets&(1<<uint(p.target)) != 0 {
			r.byColumn = false
		}
		targets |= 1 << uint(p.target)
	}
	r.absent = c.all &^ targets
	return r
}

// addBlock converts the rows of a CSV block from the first on, as add would
// one by one. When it can, it goes a column at a time: for each field, one
// loop over the rows, with no per-cell dispatch on the column's type and no
// per-row bookkeeping of which fields were set. Anything that loop does not
// handle (an empty customer, a missing required field, a value to refuse)
// sends the rows from its batch on through add, which makes the same records
// and reports the same error at the same line.
func (r *rowSink) addBlock(blk *csvBlock, row []string) error {
	from := 0
	if r.byColumn && r.observe == nil {
		for from < blk.rows() && r.b.rows == 0 {
			to := min(blk.rows(), from+r.batchRows)
			if !r.columns(blk, from, to) {
				r.b = r.c.nextBatch(r.b, r.batchRows) // half filled: the row path starts it afresh
				break
			}
			r.b.rows = to - from
			r.rep.Rows += to - from
			if err := r.flush(); err != nil {
				return err
			}
			from = to
		}
	}
	for i := from; i < blk.rows(); i++ {
		blk.row(i, row)
		if err := r.add(row, blk.lines[i]); err != nil {
			return err
		}
	}
	return nil
}

// columns appends rows [from, to) of blk to the empty batch column by column,
// or returns false, the batch then half filled, at the first cell it leaves
// to the row path.
func (r *rowSink) columns(blk *csvBlock, from, to int) bool {
	b := r.b
	nf := blk.nf
	for fi := range r.plan.fields {
		p := &r.plan.fields[fi]
		i := p.target
		required, optional := r.c.cols[i].Required, b.valid[i] != nil
		for row := from; row < to; row++ {
			k := 2 * (row*nf + p.src)
			start, end := blk.bounds[k], blk.bounds[k+1]
			if start == end {
				if required || i == 0 {
					return false
				}
				b.putNull(i)
				continue
			}
			v := value{kind: kindText, raw: blk.data[start:end:end]}
			if i == 0 {
				if b.setSubject(&v, blk.lines[row]) != nil {
					return false
				}
				continue
			}
			if b.put(i, &v, blk.lines[row]) != nil {
				return false
			}
			if optional {
				b.valid[i] = append(b.valid[i], true)
			}
		}
		b.seen = 0
	}
	for missing := r.absent; missing != 0; missing &= missing - 1 {
		i := bits.TrailingZeros64(missing)
		if r.c.cols[i].Required {
			return false
		}
		for range to - from {
			b.putNull(i)
		}
	}
	return true
}

func (r *rowSink) skip(reason string) {
	r.rep.Skipped++
	if r.rep.SkippedReasons == nil {
		r.rep.SkippedReasons = map[string]int{}
	}
	r.rep.SkippedReasons[reason]++
}

func (r *rowSink) add(row []string, line int) error {
	if r.fill != nil {
		r.fill.apply(row)
	}
	kept, err := r.convert(row, line)
	if r.observe != nil && err == nil {
		r.observe(row, kept)
	}
	return err
}

func (r *rowSink) convert(row []string, line int) (bool, error) {
	for i := range r.plan.skips {
		if s := &r.plan.skips[i]; s.match(row) {
			r.skip(s.reason)
			return false, nil
		}
	}
	b := r.b
	for i := range r.plan.fields {
		p := &r.plan.fields[i]
		var v value
		if p.plain {
			if s := row[p.src]; s != "" {
				v = value{kind: kindText, raw: bytesOf(s)}
			}
		} else if err := p.value(r.c, row, &r.memo[i], &v); err != nil {
			return false, rowError(line, p.name, err.Error())
		}
		if p.target == 0 && v.kind == kindNull && r.plan.skipEmpty {
			r.skip(ReasonNoSubject)
			return false, nil
		}
		if err := b.set(p.target, &v, line); err != nil {
			return false, err
		}
	}
	if err := b.endRow(line); err != nil {
		return false, err
	}
	r.rep.Rows++
	if b.rows >= r.batchRows {
		return true, r.flush()
	}
	return true, nil
}

func (r *rowSink) flush() error {
	if r.b.rows == 0 {
		return nil
	}
	rec := r.b.record()
	r.b = r.c.nextBatch(r.b, r.batchRows)
	return r.emit(rec)
}
