package ingest

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/privalytics/privalytics"
)

// DryRunReport is what an import would store, worked out without storing it.
type DryRunReport struct {
	ImportReport
	// Columns are the stored columns; the first is the customer's pseudonym.
	Columns []string `json:"columns"`
	// First holds the first rows as they would be stored, as text ("" for null).
	First [][]string `json:"first"`
	// Customers counts the distinct customers of the rows kept.
	Customers int `json:"customers"`
	// From and To span the event times of the rows kept.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Warnings say why the privacy unit looks wrong, if it does.
	Warnings []string `json:"warnings,omitempty"`
}

// maxTracked bounds the distinct values counted per column, so a dry run of a
// large file stays within memory; beyond it a column counts as all distinct.
const maxTracked = 1 << 20

// DryRun reads a whole file (format csv, ndjson or parquet) through the mapping
// as an import would and reports the first show rows as they would be stored,
// the rows kept and skipped by reason, the customers, the time span, and
// warnings when the customer column does not look like one person per
// customer. Nothing is stored. The pseudonyms are those of the converter's
// key. It converts on one core, as its statistics follow the file's order.
func DryRun(ctx context.Context, r io.Reader, format string, c *Converter, m *Mapping, show int) (*DryRunReport, error) {
	rep := &DryRunReport{}
	cols := c.Schema().Stored()
	rep.Columns = make([]string, len(cols))
	for i, col := range cols {
		rep.Columns[i] = col.Name
	}
	customers := map[uint64]struct{}{}
	var from, to int64
	seenTime := false
	emit := func(rec arrow.Record) error {
		defer rec.Release()
		subj := rec.Column(0).(*array.Uint64)
		ts := rec.Column(1).(*array.Timestamp)
		for i := range int(rec.NumRows()) {
			if len(customers) < 1<<24 {
				customers[subj.Value(i)] = struct{}{}
			}
			us := int64(ts.Value(i))
			if !seenTime || us < from {
				from = us
			}
			if !seenTime || us > to {
				to = us
			}
			seenTime = true
			if len(rep.First) < show {
				rep.First = append(rep.First, renderRow(rec, i))
			}
		}
		return nil
	}
	st := &sourceStats{seed: maphash.MakeSeed()}
	opt := importOptions{workers: 1, observe: st.observe, header: st.setHeader}
	var ir ImportReport
	var err error
	switch format {
	case "csv":
		ir, err = importCSV(ctx, r, c, m, 0, emit, nil, opt)
	case "ndjson":
		ir, err = importNDJSON(ctx, r, c, m, 0, emit, nil, opt)
	case "parquet":
		raw, rerr := io.ReadAll(r)
		if rerr != nil {
			return nil, privalytics.Errorf(privalytics.EINVALID, "reading the Parquet file: %v", rerr)
		}
		ir, err = importParquet(ctx, bytes.NewReader(raw), c, m, 0, emit, opt)
	default:
		return nil, privalytics.Errorf(privalytics.EINVALID, "format must be csv, ndjson or parquet, got %q", format)
	}
	if err != nil {
		return nil, err
	}
	rep.ImportReport = ir
	rep.Customers = len(customers)
	if seenTime {
		rep.From, rep.To = time.UnixMicro(from).UTC(), time.UnixMicro(to).UTC()
	}
	rep.Warnings = privacyUnitWarnings(ir.Rows, rep.Customers, subjectColumn(c, m), st.repeats())
	return rep, nil
}

// subjectColumn is the source column the customer identifier comes from.
func subjectColumn(c *Converter, m *Mapping) string {
	name := c.Schema().Subject
	if m != nil {
		if f, ok := m.Fields[name]; ok {
			return f.Column
		}
		for from, to := range m.Rename {
			if to == name {
				return from
			}
		}
	}
	return name
}

func renderRow(rec arrow.Record, i int) []string {
	out := make([]string, rec.NumCols())
	for j, col := range rec.Columns() {
		switch {
		case col.IsNull(i):
		case j == 0:
			out[j] = fmt.Sprintf("%016x", col.(*array.Uint64).Value(i))
		case col.DataType().ID() == arrow.DICTIONARY:
			d := col.(*array.Dictionary)
			out[j] = strings.Clone(d.Dictionary().(*array.String).Value(d.GetValueIndex(i)))
		case rec.Schema().Field(j).Metadata.FindKey("scale") >= 0:
			// Decimals are stored scaled; people read them with their point.
			md := rec.Schema().Field(j).Metadata
			scale, _ := strconv.Atoi(md.Values()[md.FindKey("scale")])
			out[j] = formatScaled(col.(*array.Int64).Value(i), scale)
		case col.DataType().ID() == arrow.TIMESTAMP:
			out[j] = time.UnixMicro(int64(col.(*array.Timestamp).Value(i))).UTC().Format(time.RFC3339)
		default:
			out[j] = col.ValueStr(i)
		}
	}
	return out
}

// formatScaled writes n / 10^scale exactly.
func formatScaled(n int64, scale int) string {
	if scale == 0 {
		return strconv.FormatInt(n, 10)
	}
	sign, u := "", uint64(n)
	if n < 0 {
		sign, u = "-", -u
	}
	digits := fmt.Sprintf("%0*d", scale+1, u)
	return sign + digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
}

// identifierName matches column names that usually identify a person or an
// order: if such a column repeats, the file has repeat customers.
var identifierName = regexp.MustCompile(`(?i)e-?mail|customer|client|user|member|account|visitor|buyer|order|invoice|^name$`)

// sourceStats counts, for the source columns that look like identifiers, the
// distinct values among the rows kept.
type sourceStats struct {
	seed     maphash.Seed
	header   []string
	tracked  []int // column indexes
	distinct []map[uint64]struct{}
	full     []bool
	rows     int
	probed   bool
}

func (s *sourceStats) setHeader(h []string) { s.header = append([]string(nil), h...) }

func (s *sourceStats) observe(row []string, kept bool) {
	if !kept {
		return
	}
	if !s.probed {
		// Decided on the first kept row: identifier-like names, and cells that
		// hold an email address whatever the column's name.
		s.probed = true
		for j, h := range s.header {
			if j < len(row) && (identifierName.MatchString(h) || strings.Contains(row[j], "@")) {
				s.tracked = append(s.tracked, j)
				s.distinct = append(s.distinct, map[uint64]struct{}{})
				s.full = append(s.full, false)
			}
		}
	}
	s.rows++
	for k, j := range s.tracked {
		if s.full[k] {
			continue
		}
		s.distinct[k][maphash.String(s.seed, strings.TrimSpace(row[j]))] = struct{}{}
		if len(s.distinct[k]) >= maxTracked {
			s.full[k], s.distinct[k] = true, nil
		}
	}
}

// columnRepeat is how often one source column's values repeat.
type columnRepeat struct {
	Column   string
	Distinct int // -1: more than could be counted
	Rows     int
}

func (s *sourceStats) repeats() []columnRepeat {
	var out []columnRepeat
	for k, j := range s.tracked {
		d := len(s.distinct[k])
		if s.full[k] {
			d = -1
		}
		out = append(out, columnRepeat{Column: s.header[j], Distinct: d, Rows: s.rows})
	}
	return out
}

// privacyUnitWarnings says when the customer column does not look like one
// person. Too few customers for the rows (a region, a month or a status mapped
// as the customer) makes every figure protect a whole group and drown in
// noise. One customer per row while an identifier column repeats is worse:
// each person's rows count as many customers, so the bounds and the noise
// protect one row of a person, not the person.
func privacyUnitWarnings(rows, customers int, subject string, repeats []columnRepeat) []string {
	var out []string
	if rows >= 100 && customers > 0 && (customers <= 10 || rows/customers > 500) {
		out = append(out, fmt.Sprintf("%d customers for %d rows (%d rows per customer): is %q really the customer? A column with few values (a region, a month, a status) makes every figure protect a whole group and come out as noise; map customer_id to the column that identifies a person",
			customers, rows, rows/customers, subject))
	}
	if rows >= 50 && customers*100 >= rows*95 {
		for _, r := range repeats {
			if r.Column == subject || r.Distinct < 0 || r.Distinct*10 > r.Rows*9 {
				continue
			}
			out = append(out, fmt.Sprintf("every row is a different customer (%d customers for %d rows), yet column %q repeats (%d distinct values in %d rows): if %q identifies people, the bounds protect one row of a person, not the person; map customer_id to it (or to the column of the person behind it)",
				customers, rows, r.Column, r.Distinct, r.Rows, r.Column))
		}
	}
	return out
}

// Print writes the report for a person at a terminal: the first rows as a
// table, the summary, then the warnings.
func (r *DryRunReport) Print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(r.Columns, "\t"))
	for _, row := range r.First {
		cells := make([]string, len(row))
		for i, c := range row {
			cells[i] = c
			if c == "" {
				cells[i] = "-"
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nrows kept: %d\nrows skipped: %d\n", r.Rows, r.Skipped)
	reasons := make([]string, 0, len(r.SkippedReasons))
	for k := range r.SkippedReasons {
		reasons = append(reasons, k)
	}
	sort.Strings(reasons)
	for _, k := range reasons {
		fmt.Fprintf(w, "  %d %s\n", r.SkippedReasons[k], k)
	}
	fmt.Fprintf(w, "customers: %d\n", r.Customers)
	if r.Rows > 0 {
		fmt.Fprintf(w, "time span: %s to %s\n", r.From.Format(time.RFC3339), r.To.Format(time.RFC3339))
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", warn)
	}
	_, err := fmt.Fprintln(w, "Nothing was stored (dry run).")
	return err
}

// DryRunFile runs DryRun on a file for the CLI (privalytics ingest --dry-run),
// under a throwaway pseudonymisation key: the pseudonyms it shows are not the
// server's, and the customers it counts are the same.
func DryRunFile(ctx context.Context, path, format string, schema privalytics.Schema, m *Mapping, show int) (*DryRunReport, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "dry run: %v", err)
	}
	p, err := NewPseudonymiser(key)
	if err != nil {
		return nil, err
	}
	c, err := NewConverter(schema, p, Limits{})
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINVALID, "dry run: %v", err)
	}
	defer f.Close()
	return DryRun(ctx, f, format, c, m, show)
}
