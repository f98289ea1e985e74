package ingest

import (
	"fmt"
	"strings"
	"unicode"
)

// This file holds the row-level steps of a mapping that come before the fields:
// fill-down within a group and skip rules, and the helpers the field steps share
// (conditions, month names, boolean words, snake_case names).

// condPlan is a Condition resolved against the source's columns.
type condPlan struct {
	src   int
	in    []string // matched with strings.EqualFold after trimming
	notIn []string
	empty bool
}

func (c *condPlan) match(row []string) bool {
	v := strings.TrimSpace(row[c.src])
	switch {
	case c.empty:
		return v == ""
	case len(c.in) > 0:
		return oneOf(v, c.in)
	default:
		return !oneOf(v, c.notIn)
	}
}

func oneOf(v string, set []string) bool {
	for _, s := range set {
		if strings.EqualFold(v, strings.TrimSpace(s)) {
			return true
		}
	}
	return false
}

// skipPlan is a skip rule resolved against the source's columns.
type skipPlan struct {
	condPlan
	reason string
}

// filler carries the fill-down state from row to row: the group the last row
// belonged to and, per filled column, the last value seen in that group. Its
// strings are copies, as the rows they come from are reused (NDJSON lines) or
// dropped (CSV blocks) before the group ends.
type filler struct {
	group int
	cols  []int
	key   string
	vals  []string
	fresh bool // no row seen yet: the first row starts a group whatever its key
}

func newFiller(group int, cols []int) *filler {
	return &filler{group: group, cols: cols, vals: make([]string, len(cols)), fresh: true}
}

// clone returns an independent copy: the CSV splitter hands each block the state
// at its start.
func (f *filler) clone() *filler {
	if f == nil {
		return nil
	}
	g := *f
	g.vals = append([]string(nil), f.vals...)
	return &g
}

// apply fills row's empty cells in place and remembers its values.
func (f *filler) apply(row []string) {
	if k := row[f.group]; f.fresh || k != f.key {
		f.fresh = false
		f.key = strings.Clone(k)
		clear(f.vals)
	}
	for i, c := range f.cols {
		if v := row[c]; strings.TrimSpace(v) == "" {
			row[c] = f.vals[i]
		} else if v != f.vals[i] {
			f.vals[i] = strings.Clone(v)
		}
	}
}

// monthNames maps the spellings of month names that exports use (full, three
// letters, "Sept") to Go's three-letter form, which a "Jan" layout reads.
var monthNames = func() map[string]string {
	m := map[string]string{"sept": "Sep"}
	for i := 1; i <= 12; i++ {
		full := [...]string{"", "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"}[i]
		short := strings.ToUpper(full[:1]) + full[1:3]
		m[full], m[full[:3]] = short, short
	}
	return m
}()

// normaliseMonths rewrites every word of s that is a month name to its
// three-letter form, so "June 2024" and "june 2024" read with the layout
// "Jan 2006". Other words are left as they are.
func normaliseMonths(s string) string {
	var b strings.Builder
	changed := false
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && (s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z') {
			j++
		}
		if j > i {
			if short, ok := monthNames[strings.ToLower(s[i:j])]; ok && s[i:j] != short {
				if !changed {
					b.Grow(len(s))
					b.WriteString(s[:i])
					changed = true
				}
				b.WriteString(short)
				i = j
				continue
			}
		} else {
			j = i + 1
		}
		if changed {
			b.WriteString(s[i:j])
		}
		i = j
	}
	if !changed {
		return s
	}
	return b.String()
}

// boolWord reads the words spreadsheets and exports use for booleans, without
// regard to case.
func boolWord(s string) (value, ok bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "t", "yes", "y", "1", "on":
		return true, true
	case "false", "f", "no", "n", "0", "off":
		return false, true
	}
	return false, false
}

// snakeCase turns a column name into a schema field name: "VisitorType" →
// "visitor_type", "CustomerID" → "customer_id", "Created at" → "created_at",
// "N. Revenue (formatted)" → "n_revenue_formatted".
func snakeCase(s string) string {
	rs := []rune(strings.TrimSpace(s))
	var b strings.Builder
	gap := false // a separator is due before the next letter or digit
	for i, r := range rs {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			gap = b.Len() > 0
			continue
		}
		if unicode.IsUpper(r) && i > 0 && b.Len() > 0 {
			prev := rs[i-1]
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			// A word starts at an upper-case letter after a lower-case one or a
			// digit, or at the last capital of an acronym ("IDNumber" → id_number).
			if unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && nextLower) {
				gap = true
			}
		}
		if gap {
			b.WriteByte('_')
			gap = false
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// columnList names a file's columns for an error message, shortened for wide files.
func columnList(header []string) string {
	q := make([]string, 0, min(len(header), 20))
	for i, h := range header {
		if i == 20 {
			q = append(q, fmt.Sprintf("… %d more", len(header)-20))
			break
		}
		q = append(q, fmt.Sprintf("%q", h))
	}
	return strings.Join(q, ", ")
}
