// Package dpsql compiles the SQL form of a Privalytics query — the shape of
// BigQuery's differential-privacy clause — into the JSON query model, so both
// forms run through the same planner:
//
//	SELECT WITH DIFFERENTIAL_PRIVACY
//	    OPTIONS (epsilon = 1, delta = 1e-6, max_groups_contributed = 4)
//	  category,
//	  TIMESTAMP_TRUNC(ts, MONTH) AS month,
//	  COUNT(*) AS orders,
//	  SUM(amount, contribution_bounds_per_row => (0, 200)) AS revenue,
//	  COUNT(DISTINCT customer_id) AS buyers
//	FROM events
//	WHERE type = 'purchase' AND ts >= '2025-01-01' AND ts < '2025-04-01'
//	GROUP BY category, month
//
// Options: epsilon, delta, max_groups_contributed (L0), max_rows_per_group
// (L∞, our extension), max_rows, noise ('laplace' or 'gaussian'), confidence,
// time_zone, purpose, privacy_unit_column (must name the customer).
// Aggregates: COUNT(*), COUNT(DISTINCT customer_id), SUM, AVG, VAR_POP
// (VARIANCE), STDDEV_POP (STDDEV), PERCENTILE_CONT(col, rank), each with
// contribution_bounds_per_row => (lower, upper) or => AUTO, and/or
// contribution_bounds_per_group => (lower, upper) — a customer's total in one
// group clamped (SUM, AVG: the customer's average, and COUNT(*, …): its rows)
// — and with it, for SUM and COUNT(*, …), max_norm => n (our extension: the L2
// norm of the customer's per-group totals, Gaussian noise).
// GROUP BY ROLLUP(a, b) adds the subtotals per a and the grand total, sums of
// the released cells at no extra ε (counts and sums, public keys only).
// Conditions: =, !=,
// <>, <, <=, >, >=, IN, NOT IN, BETWEEN, joined by AND. Every error names the
// line and column and shows where.
package dpsql

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/analytics"
)

// MaxLength bounds a query's text.
const MaxLength = 64 << 10

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tString
	tNumber
	tPunct // ( ) , * = < > <= >= != <> => .
)

type token struct {
	kind tokKind
	text string // identifiers as written; strings unquoted
	pos  int    // byte offset
}

// Error is a parse error at a position of the query.
type Error struct {
	Line, Col int
	Msg       string
	excerpt   string
}

func (e *Error) Error() string {
	return fmt.Sprintf("sql: %d:%d: %s\n%s", e.Line, e.Col, e.Msg, e.excerpt)
}

type parser struct {
	src    string
	toks   []token
	i      int
	schema privalytics.Schema
}

// Parse compiles a SQL query against the tenant's schema into the JSON query
// model; the planner then checks it like any JSON query. Errors are coded
// EINVALID and point at the position in the query.
func Parse(src string, schema privalytics.Schema) (*privalytics.Query, error) {
	if len(src) > MaxLength {
		return nil, privalytics.Errorf(privalytics.ETOOLARGE, "sql: the query is %d bytes; at most %d", len(src), MaxLength)
	}
	p := &parser{src: src, schema: schema}
	if err := p.lex(); err != nil {
		return nil, err
	}
	q, err := p.query()
	if err != nil {
		return nil, err
	}
	// Through the JSON decoder, so values are normalised exactly as a JSON
	// query's are (same canonical form, same fingerprint, same cache entry).
	b, err := json.Marshal(q)
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINVALID, "sql: %v", err)
	}
	return analytics.DecodeQuery(b)
}

func (p *parser) errAt(pos int, format string, args ...any) error {
	line, col, start := 1, 1, 0
	for i, r := range p.src[:min(pos, len(p.src))] {
		if r == '\n' {
			line, col, start = line+1, 1, i+1
		} else {
			col++
		}
	}
	end := strings.IndexByte(p.src[start:], '\n')
	if end < 0 {
		end = len(p.src) - start
	}
	text := p.src[start : start+end]
	caret := strings.Repeat(" ", utf8.RuneCountInString(p.src[start:min(pos, len(p.src))]))
	e := &Error{Line: line, Col: col, Msg: fmt.Sprintf(format, args...), excerpt: "  " + text + "\n  " + caret + "^"}
	return privalytics.Errorf(privalytics.EINVALID, "%s", e.Error())
}

func (p *parser) lex() error {
	s := p.src
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && w == 1:
			return p.errAt(i, "the query is not valid UTF-8")
		case unicode.IsSpace(r):
			i += w
		case r == '-' && strings.HasPrefix(s[i:], "--"): // comment to the end of the line
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case r == '\'' || r == '"' || r == '`':
			quote, start := s[i], i
			var b strings.Builder
			i++
			for {
				if i >= len(s) {
					return p.errAt(start, "this quoted text is never closed; add %c", quote)
				}
				if s[i] == quote {
					if i+1 < len(s) && s[i+1] == quote { // a doubled quote is one quote
						b.WriteByte(quote)
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
			kind := tString
			if quote == '`' || quote == '"' {
				kind = tIdent // quoted identifier
			}
			p.toks = append(p.toks, token{kind: kind, text: b.String(), pos: start})
		case unicode.IsLetter(r) || r == '_':
			start := i
			for i < len(s) {
				r, w := utf8.DecodeRuneInString(s[i:])
				if !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_' {
					break
				}
				i += w
			}
			p.toks = append(p.toks, token{kind: tIdent, text: s[start:i], pos: start})
		case r >= '0' && r <= '9' || r == '.' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' || r == '-' && i+1 < len(s) && (s[i+1] >= '0' && s[i+1] <= '9' || s[i+1] == '.'):
			start := i
			i++
			for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.' || s[i] == 'e' || s[i] == 'E' ||
				(s[i] == '-' || s[i] == '+') && (s[i-1] == 'e' || s[i-1] == 'E')) {
				i++
			}
			if _, err := strconv.ParseFloat(s[start:i], 64); err != nil {
				return p.errAt(start, "%q is not a number", s[start:i])
			}
			p.toks = append(p.toks, token{kind: tNumber, text: s[start:i], pos: start})
		default:
			for _, op := range []string{"<=", ">=", "!=", "<>", "=>"} {
				if strings.HasPrefix(s[i:], op) {
					p.toks = append(p.toks, token{kind: tPunct, text: op, pos: i})
					i += 2
					goto next
				}
			}
			if strings.ContainsRune("(),*=<>.", r) {
				p.toks = append(p.toks, token{kind: tPunct, text: string(r), pos: i})
				i += w
				continue
			}
			return p.errAt(i, "unexpected %q", r)
		next:
		}
	}
	p.toks = append(p.toks, token{kind: tEOF, pos: len(s)})
	return nil
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

// isKw reports whether t is the keyword kw (case-insensitive, unquoted).
func (p *parser) isKw(t token, kw string) bool {
	return t.kind == tIdent && strings.EqualFold(t.text, kw) && t.pos < len(p.src) && p.src[t.pos] != '`' && p.src[t.pos] != '"'
}

func (p *parser) kw(words ...string) error {
	for _, w := range words {
		t := p.next()
		if !p.isKw(t, w) {
			return p.errAt(t.pos, "expected %s, found %s", w, describe(t))
		}
	}
	return nil
}

func (p *parser) punct(s string) error {
	t := p.next()
	if t.kind != tPunct || t.text != s {
		return p.errAt(t.pos, "expected %q, found %s", s, describe(t))
	}
	return nil
}

func (p *parser) acceptPunct(s string) bool {
	if t := p.peek(); t.kind == tPunct && t.text == s {
		p.i++
		return true
	}
	return false
}

func (p *parser) acceptKw(w string) bool {
	if p.isKw(p.peek(), w) {
		p.i++
		return true
	}
	return false
}

func describe(t token) string {
	switch t.kind {
	case tEOF:
		return "the end of the query"
	case tString:
		return fmt.Sprintf("'%s'", t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

func (p *parser) ident(what string) (token, error) {
	t := p.next()
	if t.kind != tIdent {
		return t, p.errAt(t.pos, "expected %s, found %s", what, describe(t))
	}
	return t, nil
}

// literal reads a string, number, TRUE/FALSE, or DATE/TIMESTAMP 'text'.
func (p *parser) literal() (any, error) {
	t := p.next()
	switch {
	case t.kind == tString:
		return t.text, nil
	case t.kind == tNumber:
		if n, err := strconv.ParseInt(t.text, 10, 64); err == nil {
			return n, nil
		}
		f, _ := strconv.ParseFloat(t.text, 64)
		return f, nil
	case p.isKw(t, "TRUE"):
		return true, nil
	case p.isKw(t, "FALSE"):
		return false, nil
	case p.isKw(t, "DATE") || p.isKw(t, "TIMESTAMP"):
		s := p.next()
		if s.kind != tString {
			return nil, p.errAt(s.pos, "%s needs a quoted value, e.g. %s '2025-01-01'", strings.ToUpper(t.text), strings.ToUpper(t.text))
		}
		return s.text, nil
	}
	return nil, p.errAt(t.pos, "expected a value ('text', a number, TRUE or FALSE), found %s", describe(t))
}

func (p *parser) number(what string) (float64, error) {
	t := p.next()
	if t.kind != tNumber {
		return 0, p.errAt(t.pos, "expected %s (a number), found %s", what, describe(t))
	}
	f, _ := strconv.ParseFloat(t.text, 64)
	return f, nil
}

// selected is one SELECT item before GROUP BY resolves it.
type selected struct {
	alias string
	pos   int
	// exactly one of:
	column string // a plain column
	bucket string // TIMESTAMP_TRUNC(col, unit)
	agg    *privalytics.Aggregate
}

func (p *parser) query() (*privalytics.Query, error) {
	q := &privalytics.Query{}
	if err := p.kw("SELECT", "WITH", "DIFFERENTIAL_PRIVACY"); err != nil {
		return nil, err
	}
	if p.acceptKw("OPTIONS") {
		if err := p.options(q); err != nil {
			return nil, err
		}
	}
	var items []selected
	for {
		it, err := p.selectItem()
		if err != nil {
			return nil, err
		}
		items = append(items, it)
		if !p.acceptPunct(",") {
			break
		}
	}
	if err := p.kw("FROM"); err != nil {
		return nil, err
	}
	if t, err := p.ident("the table name events"); err != nil {
		return nil, err
	} else if !strings.EqualFold(t.text, "events") {
		return nil, p.errAt(t.pos, "the only table is events, not %q", t.text)
	}
	if p.acceptKw("WHERE") {
		for {
			fs, err := p.condition(q)
			if err != nil {
				return nil, err
			}
			q.Where = append(q.Where, fs...)
			if !p.acceptKw("AND") {
				break
			}
		}
		if t := p.peek(); p.isKw(t, "OR") {
			return nil, p.errAt(t.pos, "only AND joins conditions; write alternatives of one column as IN (…)")
		}
	}
	var groups []token
	if p.acceptKw("GROUP") {
		if err := p.kw("BY"); err != nil {
			return nil, err
		}
		// GROUP BY ROLLUP(a, b): the groups and their subtotals (Query.Rollup).
		rollup := p.acceptKw("ROLLUP")
		if rollup {
			if err := p.punct("("); err != nil {
				return nil, err
			}
			q.Rollup = true
		}
		for {
			start := p.peek()
			if p.isKw(start, "TIMESTAMP_TRUNC") {
				it, err := p.selectItem()
				if err != nil {
					return nil, err
				}
				groups = append(groups, token{kind: tIdent, text: "\x00" + it.bucket + "\x00" + it.column, pos: start.pos})
			} else {
				t, err := p.ident("a column or an alias to group by")
				if err != nil {
					return nil, err
				}
				groups = append(groups, t)
			}
			if !p.acceptPunct(",") {
				break
			}
		}
		if rollup {
			if err := p.punct(")"); err != nil {
				return nil, err
			}
		}
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.errAt(t.pos, "unexpected %s after the query; it ends after GROUP BY", describe(t))
	}
	return q, p.resolve(q, items, groups)
}

func (p *parser) options(q *privalytics.Query) error {
	if err := p.punct("("); err != nil {
		return err
	}
	seen := map[string]bool{}
	for {
		name, err := p.ident("an option name")
		if err != nil {
			return err
		}
		key := strings.ToLower(name.text)
		if seen[key] {
			return p.errAt(name.pos, "option %s is given twice", key)
		}
		seen[key] = true
		if err := p.punct("="); err != nil {
			return err
		}
		switch key {
		case "epsilon", "delta", "confidence":
			v, err := p.number(key)
			if err != nil {
				return err
			}
			*map[string]*float64{"epsilon": &q.Epsilon, "delta": &q.Delta, "confidence": &q.Confidence}[key] = v
		case "max_groups_contributed", "max_rows_per_group", "max_rows":
			t := p.peek()
			v, err := p.number(key)
			if err != nil {
				return err
			}
			if v != float64(int(v)) || v < 0 || v > 1e9 {
				return p.errAt(t.pos, "%s must be a whole number", key)
			}
			*map[string]*int{"max_groups_contributed": &q.Bounds.MaxGroups, "max_rows_per_group": &q.Bounds.MaxRowsPerGroup, "max_rows": &q.Bounds.MaxRows}[key] = int(v)
		case "noise", "time_zone", "purpose":
			t := p.next()
			if t.kind != tString && t.kind != tIdent {
				return p.errAt(t.pos, "%s takes a quoted value, e.g. %s = 'laplace'", key, key)
			}
			*map[string]*string{"noise": &q.Noise, "time_zone": &q.TimeZone, "purpose": &q.Purpose}[key] = strings.ToLower(t.text)
			if key == "time_zone" {
				q.TimeZone = t.text // zone names are case-sensitive
			}
		case "privacy_unit_column":
			t, err := p.ident("the privacy unit column")
			if err != nil {
				return err
			}
			if !p.isSubject(t.text) {
				return p.errAt(t.pos, "the privacy unit is always the customer (%s); drop the option or name it", p.schema.Subject)
			}
		default:
			return p.errAt(name.pos, "unknown option %q; options are epsilon, delta, max_groups_contributed, max_rows_per_group, max_rows, noise, confidence, time_zone, purpose, privacy_unit_column", name.text)
		}
		if !p.acceptPunct(",") {
			break
		}
	}
	return p.punct(")")
}

var aggOps = map[string]string{
	"COUNT": "count", "SUM": "sum", "AVG": "mean", "VAR_POP": "variance", "VARIANCE": "variance",
	"STDDEV_POP": "stddev", "STDDEV": "stddev", "PERCENTILE_CONT": "quantile",
}

var truncUnits = map[string]string{"HOUR": "hour", "DAY": "day", "WEEK": "week", "ISOWEEK": "week", "MONTH": "month", "QUARTER": "quarter", "YEAR": "year"}

func (p *parser) selectItem() (selected, error) {
	t := p.next()
	it := selected{pos: t.pos}
	if t.kind != tIdent {
		return it, p.errAt(t.pos, "expected a column, TIMESTAMP_TRUNC(…) or an aggregate such as COUNT(*), found %s", describe(t))
	}
	name := strings.ToUpper(t.text)
	switch {
	case p.isKw(t, "TIMESTAMP_TRUNC") || p.isKw(t, "DATE_TRUNC"):
		if err := p.punct("("); err != nil {
			return it, err
		}
		col, err := p.ident("the time column")
		if err != nil {
			return it, err
		}
		if err := p.punct(","); err != nil {
			return it, err
		}
		u, err := p.ident("a unit (HOUR, DAY, WEEK, MONTH, QUARTER or YEAR)")
		if err != nil {
			return it, err
		}
		unit, ok := truncUnits[strings.ToUpper(u.text)]
		if !ok {
			return it, p.errAt(u.pos, "unit %q is not one of HOUR, DAY, WEEK, MONTH, QUARTER, YEAR", u.text)
		}
		if err := p.punct(")"); err != nil {
			return it, err
		}
		it.column, it.bucket = col.text, unit
	case aggOps[name] != "" && p.peek().kind == tPunct && p.peek().text == "(":
		agg, err := p.aggregate(name)
		if err != nil {
			return it, err
		}
		it.agg = agg
	default:
		it.column = t.text
	}
	if p.acceptKw("AS") {
		a, err := p.ident("an alias after AS")
		if err != nil {
			return it, err
		}
		it.alias = a.text
	}
	return it, nil
}

func (p *parser) aggregate(name string) (*privalytics.Aggregate, error) {
	p.next() // (
	a := &privalytics.Aggregate{Op: aggOps[name]}
	if name == "COUNT" {
		switch t := p.peek(); {
		case t.kind == tPunct && t.text == "*":
			p.next()
			// COUNT(*, contribution_bounds_per_group => (lower, upper)
			// [, max_norm => n]): the rows one customer adds to one group,
			// clamped.
			var norm groupNorm
			for p.acceptPunct(",") {
				opt, err := p.ident("contribution_bounds_per_group")
				if err != nil {
					return nil, err
				}
				switch strings.ToLower(opt.text) {
				case "contribution_bounds_per_group":
					if a.ContributionBoundsPerGroup != nil {
						return nil, p.errAt(opt.pos, "contribution_bounds_per_group is given twice")
					}
					if err := p.punct("=>"); err != nil {
						return nil, err
					}
					lo, hi, err := p.pair()
					if err != nil {
						return nil, err
					}
					a.ContributionBoundsPerGroup = &privalytics.GroupBounds{Lower: lo, Upper: hi}
				case "max_norm":
					if err := p.maxNorm(&norm, opt); err != nil {
						return nil, err
					}
				default:
					return nil, p.errAt(opt.pos, "COUNT(*) takes contribution_bounds_per_group => (lower, upper) and max_norm => n; got %q", opt.text)
				}
			}
			if err := p.setNorm(a, norm); err != nil {
				return nil, err
			}
		case p.isKw(t, "DISTINCT"):
			p.next()
			c, err := p.ident(p.schema.Subject)
			if err != nil {
				return nil, err
			}
			if !p.isSubject(c.text) {
				return nil, p.errAt(c.pos, "COUNT(DISTINCT …) counts customers only: write COUNT(DISTINCT %s)", p.schema.Subject)
			}
			a.Op = "distinct_customers"
		default:
			return nil, p.errAt(t.pos, "write COUNT(*) or COUNT(DISTINCT %s)", p.schema.Subject)
		}
		return a, p.punct(")")
	}
	col, err := p.ident("the column to aggregate")
	if err != nil {
		return nil, err
	}
	a.Column = col.text
	if name == "PERCENTILE_CONT" {
		if err := p.punct(","); err != nil {
			return nil, err
		}
		r, err := p.number("the rank, e.g. 0.5 for the median")
		if err != nil {
			return nil, err
		}
		a.Rank = r
		if r == 0.5 {
			a.Op, a.Rank = "median", 0
		}
	}
	var norm groupNorm
	for p.acceptPunct(",") {
		opt, err := p.ident("contribution_bounds_per_row")
		if err != nil {
			return nil, err
		}
		perGroup := false
		switch strings.ToLower(opt.text) {
		case "max_norm":
			if err := p.maxNorm(&norm, opt); err != nil {
				return nil, err
			}
			continue
		case "contribution_bounds_per_row":
			if a.Lower != nil || a.Bounds != "" {
				return nil, p.errAt(opt.pos, "contribution_bounds_per_row is given twice")
			}
		case "contribution_bounds_per_group":
			if a.ContributionBoundsPerGroup != nil {
				return nil, p.errAt(opt.pos, "contribution_bounds_per_group is given twice")
			}
			perGroup = true
		default:
			return nil, p.errAt(opt.pos, "unknown argument %q; give contribution_bounds_per_row => (lower, upper) or => AUTO, contribution_bounds_per_group => (lower, upper), or max_norm => n", opt.text)
		}
		if err := p.punct("=>"); err != nil {
			return nil, err
		}
		if !perGroup && p.acceptKw("AUTO") {
			a.Bounds = "auto"
		} else {
			lo, hi, err := p.pair()
			if err != nil {
				return nil, err
			}
			if perGroup {
				a.ContributionBoundsPerGroup = &privalytics.GroupBounds{Lower: lo, Upper: hi}
			} else {
				a.Lower, a.Upper = &lo, &hi
			}
		}
	}
	if err := p.setNorm(a, norm); err != nil {
		return nil, err
	}
	// Without bounds the query is tuned (as BigQuery computes bounds when
	// none are given): the planner says what to add when it cannot be.
	return a, p.punct(")")
}

// groupNorm is an aggregate's max_norm argument as parsed.
type groupNorm struct {
	at    *token
	value float64
}

// maxNorm parses "=> n" after max_norm (at opt).
func (p *parser) maxNorm(n *groupNorm, opt token) error {
	if n.at != nil {
		return p.errAt(opt.pos, "max_norm is given twice")
	}
	if err := p.punct("=>"); err != nil {
		return err
	}
	v, err := p.number("the L2 norm, e.g. max_norm => 100")
	n.at, n.value = &opt, v
	return err
}

// setNorm puts a parsed max_norm on the aggregate's per-group bounds, which
// it needs; the planner checks the value.
func (p *parser) setNorm(a *privalytics.Aggregate, n groupNorm) error {
	if n.at == nil {
		return nil
	}
	if a.ContributionBoundsPerGroup == nil {
		return p.errAt(n.at.pos, "max_norm bounds the customer's per-group totals: give contribution_bounds_per_group => (lower, upper) too")
	}
	a.ContributionBoundsPerGroup.MaxNorm = n.value
	return nil
}

// pair parses "(lower, upper)".
func (p *parser) pair() (lo, hi float64, err error) {
	if err = p.punct("("); err != nil {
		return
	}
	if lo, err = p.number("the lower bound"); err != nil {
		return
	}
	if err = p.punct(","); err != nil {
		return
	}
	if hi, err = p.number("the upper bound"); err != nil {
		return
	}
	err = p.punct(")")
	return
}

func (p *parser) condition(q *privalytics.Query) ([]privalytics.Filter, error) {
	col, err := p.ident("a column in WHERE")
	if err != nil {
		return nil, err
	}
	f := privalytics.Filter{Column: col.text}
	t := p.next()
	switch {
	case p.isKw(t, "NOT"):
		if err := p.kw("IN"); err != nil {
			return nil, err
		}
		vs, err := p.list()
		if err != nil {
			return nil, err
		}
		f.NotIn = vs
	case p.isKw(t, "IN"):
		vs, err := p.list()
		if err != nil {
			return nil, err
		}
		f.In = vs
	case p.isKw(t, "BETWEEN"):
		lo, err := p.literal()
		if err != nil {
			return nil, err
		}
		if err := p.kw("AND"); err != nil {
			return nil, err
		}
		hi, err := p.literal()
		if err != nil {
			return nil, err
		}
		f.Gte, f.Lte = lo, hi
	case t.kind == tPunct:
		v, err := p.literal()
		if err != nil {
			return nil, err
		}
		switch t.text {
		case "=":
			f.Eq = v
		case "!=", "<>":
			f.NotIn = []any{v}
		case "<":
			f.Lt = v
		case "<=":
			f.Lte = v
		case ">":
			f.Gt = v
		case ">=":
			f.Gte = v
		default:
			return nil, p.errAt(t.pos, "expected a comparison (=, !=, <, <=, >, >=, IN, NOT IN, BETWEEN), found %s", describe(t))
		}
	default:
		return nil, p.errAt(t.pos, "expected a comparison (=, !=, <, <=, >, >=, IN, NOT IN, BETWEEN), found %s", describe(t))
	}
	// Two range conditions on one column make one range filter, as in JSON.
	for i := range q.Where {
		w := &q.Where[i]
		if w.Column == f.Column && isRange(*w) && isRange(f) && !overlaps(*w, f) {
			w.Gt, w.Gte, w.Lt, w.Lte = first(w.Gt, f.Gt), first(w.Gte, f.Gte), first(w.Lt, f.Lt), first(w.Lte, f.Lte)
			return nil, nil
		}
	}
	return []privalytics.Filter{f}, nil
}

func isRange(f privalytics.Filter) bool {
	return f.Eq == nil && f.In == nil && f.NotIn == nil && (f.Gt != nil || f.Gte != nil || f.Lt != nil || f.Lte != nil)
}

// overlaps reports whether two ranges set the same side (then they stay apart
// and the planner reports the conflict, if any).
func overlaps(a, b privalytics.Filter) bool {
	lowA, lowB := a.Gt != nil || a.Gte != nil, b.Gt != nil || b.Gte != nil
	highA, highB := a.Lt != nil || a.Lte != nil, b.Lt != nil || b.Lte != nil
	return lowA && lowB || highA && highB
}

func first(a, b any) any {
	if a != nil {
		return a
	}
	return b
}

func (p *parser) list() ([]any, error) {
	if err := p.punct("("); err != nil {
		return nil, err
	}
	var vs []any
	for {
		v, err := p.literal()
		if err != nil {
			return nil, err
		}
		vs = append(vs, v)
		if !p.acceptPunct(",") {
			break
		}
	}
	return vs, p.punct(")")
}

// resolve turns SELECT items and GROUP BY entries into group keys and aggregates.
func (p *parser) resolve(q *privalytics.Query, items []selected, groups []token) error {
	byAlias := map[string]selected{}
	for _, it := range items {
		if it.alias != "" {
			byAlias[strings.ToLower(it.alias)] = it
		}
	}
	grouped := map[string]bool{} // "col" or "\x00unit\x00col"
	for _, g := range groups {
		key := g.text
		var gk privalytics.GroupKey
		if strings.HasPrefix(key, "\x00") {
			parts := strings.Split(key, "\x00")
			gk = privalytics.GroupKey{Time: parts[1]}
			if err := p.checkTimeColumn(parts[2], g.pos); err != nil {
				return err
			}
		} else if it, ok := byAlias[strings.ToLower(key)]; ok && it.agg == nil {
			if it.bucket != "" {
				if err := p.checkTimeColumn(it.column, it.pos); err != nil {
					return err
				}
				gk, key = privalytics.GroupKey{Time: it.bucket}, "\x00"+it.bucket+"\x00"+it.column
			} else {
				gk, key = privalytics.GroupKey{Column: it.column}, it.column
			}
		} else if ok && it.agg != nil {
			return p.errAt(g.pos, "cannot group by the aggregate %s", key)
		} else {
			gk = privalytics.GroupKey{Column: key}
		}
		if grouped[key] {
			return p.errAt(g.pos, "%s is grouped by twice", g.text)
		}
		grouped[key] = true
		q.GroupBy = append(q.GroupBy, gk)
	}
	for _, it := range items {
		switch {
		case it.agg != nil:
			a := *it.agg
			a.Name = it.alias
			q.Aggregates = append(q.Aggregates, a)
		case it.bucket != "":
			if !grouped["\x00"+it.bucket+"\x00"+it.column] {
				return p.errAt(it.pos, "TIMESTAMP_TRUNC(%s, %s) is selected but not grouped by; add it (or its alias) to GROUP BY", it.column, strings.ToUpper(it.bucket))
			}
		default:
			if !grouped[it.column] {
				return p.errAt(it.pos, "%s is selected but not grouped by; add it to GROUP BY or aggregate it", it.column)
			}
		}
	}
	if len(q.Aggregates) == 0 {
		return p.errAt(len(p.src), "select at least one aggregate, e.g. COUNT(*)")
	}
	return nil
}

func (p *parser) checkTimeColumn(col string, pos int) error {
	if col != p.schema.Time {
		return p.errAt(pos, "time buckets are of the event time (%s), not %q", p.schema.Time, col)
	}
	return nil
}

// isSubject reports whether name is the customer identifier's column.
func (p *parser) isSubject(name string) bool {
	return name == p.schema.Subject || name == privalytics.SubjectColumn
}
