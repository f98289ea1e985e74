package ingest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics/synth"
)

// TestColumnPathMatchesRowPath imports the same files a column at a time (the
// default for a plain plan) and row by row (forced by an observer, as the dry
// run has), and wants the same records, report and error: on clean files, with
// a column of the schema absent, and with a bad cell at several places, where
// the column path must hand its batch to the row path.
func TestColumnPathMatchesRowPath(t *testing.T) {
	t.Parallel()
	lines := synthCSVLines(t, 2_500, 29)
	header := strings.Join(synth.CSVHeader(), ",")
	file := func(edit func(i int, cells []string)) string {
		var sb strings.Builder
		sb.WriteString(header + "\n")
		for i, ln := range lines {
			cells := strings.Split(ln, ",")
			if edit != nil {
				edit(i, cells)
			}
			sb.WriteString(strings.Join(cells, ",") + "\n")
		}
		return sb.String()
	}
	cases := map[string]string{
		"clean": file(nil),
		// The quantity and country columns left out: every row null there.
		"absent columns": strings.NewReplacer(",quantity", "", ",country", "").Replace(
			func() string {
				var sb strings.Builder
				sb.WriteString(header + "\n")
				for _, ln := range lines {
					c := strings.Split(ln, ",")
					sb.WriteString(strings.Join(append(c[:8:8], c[9]), ",") + "\n")
				}
				return sb.String()
			}()),
	}
	for _, at := range []int{0, 999, 1_000, 2_499} {
		cases[fmt.Sprintf("bad amount at row %d", at)] = file(func(i int, c []string) {
			if i == at {
				c[9] = "1.2.3"
			}
		})
		cases[fmt.Sprintf("no type at row %d", at)] = file(func(i int, c []string) {
			if i == at {
				c[2] = ""
			}
		})
		cases[fmt.Sprintf("no customer at row %d", at)] = file(func(i int, c []string) {
			if i == at {
				c[0] = ""
			}
		})
		cases[fmt.Sprintf("bad time at row %d", at)] = file(func(i int, c []string) {
			if i == at {
				c[1] = c[1][:13] + ":99:00Z" // the hour memo has seen this hour
			}
		})
	}
	conv := testConverter(t)
	type outcome struct {
		Rows   []string
		Report ImportReport
		Err    string
	}
	run := func(text string, batchRows int, byRow bool) outcome {
		var out outcome
		opt := importOptions{chunkBytes: 16 << 10}
		if byRow {
			opt.observe = func([]string, bool) {}
		}
		rep, err := importCSV(context.Background(), strings.NewReader(text), conv, nil, batchRows, func(r arrow.Record) error {
			checkRecord(t, conv, r)
			out.Rows = append(out.Rows, values(r)...)
			return nil
		}, nil, opt)
		out.Report = rep
		if err != nil {
			out.Err = err.Error()
		}
		return out
	}
	clean := run(cases["clean"], 1_000, true)
	if clean.Err != "" || len(clean.Rows) != len(lines) {
		t.Fatalf("clean file: %d of %d rows, error %q", len(clean.Rows), len(lines), clean.Err)
	}
	for name, text := range cases {
		for _, batchRows := range []int{1, 7, 1_000} {
			byColumn, byRow := run(text, batchRows, false), run(text, batchRows, true)
			if !strings.HasPrefix(name, "bad") && !strings.HasPrefix(name, "no ") {
				if diff := cmp.Diff(byRow, byColumn); diff != "" {
					t.Errorf("%s, batches of %d: (-row by row +column by column):\n%s", name, batchRows, diff)
				}
				continue
			}
			// A bad row stops the import; the blocks before its block are
			// emitted, and where blocks are cut depends on which buffer the
			// reader had free, so only the error must be the same, and what
			// was emitted must be the file's first rows.
			if byColumn.Err == "" || byColumn.Err != byRow.Err {
				t.Errorf("%s, batches of %d: column by column says %q, row by row %q", name, batchRows, byColumn.Err, byRow.Err)
			}
			for _, o := range []outcome{byColumn, byRow} {
				if o.Report.Rows != len(o.Rows) || len(o.Rows) > len(clean.Rows) {
					t.Fatalf("%s, batches of %d: report of %d rows, %d emitted", name, batchRows, o.Report.Rows, len(o.Rows))
				}
				if len(o.Rows) > 0 {
					if diff := cmp.Diff(clean.Rows[:len(o.Rows)], o.Rows); diff != "" {
						t.Errorf("%s, batches of %d: the rows emitted are not the file's first (-want +got):\n%s", name, batchRows, diff)
					}
				}
			}
		}
	}
}
