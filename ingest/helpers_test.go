package ingest

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/synth"
)

var testKey = bytes.Repeat([]byte{7}, 32)

func testConverter(tb testing.TB) *Converter {
	tb.Helper()
	return converterFor(tb, privalytics.DefaultRetailSchema(), DefaultLimits())
}

func converterFor(tb testing.TB, s privalytics.Schema, lim Limits) *Converter {
	tb.Helper()
	p, err := NewPseudonymiser(testKey)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := NewConverter(s, p, lim)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func subjectOf(tb testing.TB, id string) uint64 {
	tb.Helper()
	p, err := NewPseudonymiser(testKey)
	if err != nil {
		tb.Fatal(err)
	}
	return p.Subject([]byte(id))
}

// allTypesSchema has one column of every type, for validation tests.
func allTypesSchema() privalytics.Schema {
	return privalytics.Schema{
		Subject: "customer_id",
		Time:    "ts",
		Columns: []privalytics.Column{
			{Name: "customer_id", Type: privalytics.TypeString, Required: true, MaxLength: 16},
			{Name: "ts", Type: privalytics.TypeTimestamp, Required: true},
			{Name: "type", Type: privalytics.TypeString, Required: true, Allowed: []string{"purchase", "view"}},
			{Name: "note", Type: privalytics.TypeString}, // max_length 0: Limits.MaxStringBytes
			{Name: "qty", Type: privalytics.TypeInt},
			{Name: "amount", Type: privalytics.TypeDecimal, Scale: 2},
			{Name: "score", Type: privalytics.TypeFloat},
			{Name: "member", Type: privalytics.TypeBool},
		},
	}
}

// allTypesLimits makes the server default for strings small enough to test.
func allTypesLimits() Limits { return Limits{MaxRows: 3, MaxStringBytes: 8} }

// cells renders a record's rows as Go values: uint64 subjects, int64 (µs for
// timestamps, scaled for decimals), float64, bool, string (through the
// dictionary), and nil for null.
func cells(tb testing.TB, rec arrow.Record) [][]any {
	tb.Helper()
	out := make([][]any, rec.NumRows())
	for i := range out {
		row := make([]any, rec.NumCols())
		for j, col := range rec.Columns() {
			if col.IsNull(i) {
				continue
			}
			switch a := col.(type) {
			case *array.Uint64:
				row[j] = a.Value(i)
			case *array.Int64:
				row[j] = a.Value(i)
			case *array.Timestamp:
				row[j] = int64(a.Value(i))
			case *array.Float64:
				row[j] = a.Value(i)
			case *array.Boolean:
				row[j] = a.Value(i)
			case *array.Dictionary:
				row[j] = a.Dictionary().(*array.String).Value(a.GetValueIndex(i))
			default:
				tb.Fatalf("column %d: unexpected array type %T", j, col)
			}
		}
		out[i] = row
	}
	return out
}

// values renders rows as "|"-joined text, for comparing imports of one schema.
func values(rec arrow.Record) []string {
	var out []string
	for i := range int(rec.NumRows()) {
		var row []byte
		for j, c := range rec.Columns() {
			if j > 0 {
				row = append(row, '|')
			}
			switch {
			case c.IsNull(i):
				row = append(row, "null"...)
			case c.DataType().ID() == arrow.DICTIONARY:
				d := c.(*array.Dictionary)
				row = append(row, d.Dictionary().(*array.String).Value(d.GetValueIndex(i))...)
			default:
				row = append(row, c.ValueStr(i)...)
			}
		}
		out = append(out, string(row))
	}
	return out
}

// repoRoot is the module root: the nearest directory above with a go.mod.
func repoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// sharedData returns ../shared/data beside the module root, or skips the test
// saying why: a user's fresh clone has no shared folder; CI always has it.
func sharedData(t *testing.T) string {
	t.Helper()
	data := filepath.Join(repoRoot(t), "..", "shared", "data")
	if _, err := os.Stat(filepath.Join(data, "online_retail_uci.csv.gz")); err != nil {
		t.Skipf("SKIPPED: needs the UCI Online Retail file in %s (present in CI, absent in a fresh clone): %v", data, err)
	}
	return data
}

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, maxCSVLine) }

// synthCSVLines returns n synthetic events of the given seed as CSV lines
// without their newline, in the column order of synth.CSVHeader.
func synthCSVLines(tb testing.TB, n int, seed uint64) []string {
	tb.Helper()
	cfg := synth.DefaultConfig()
	cfg.Events, cfg.Seed = n, seed
	g, err := synth.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	lines := make([]string, 0, n)
	var ev synth.Event
	var buf []byte
	for g.Next(&ev) {
		buf = synth.AppendCSV(buf[:0], &ev)
		lines = append(lines, string(buf[:len(buf)-1]))
	}
	return lines
}

// synthCSVFile is synthCSVLines as a file with its header.
func synthCSVFile(tb testing.TB, n int, seed uint64) []byte {
	tb.Helper()
	lines := synthCSVLines(tb, n, seed)
	return []byte(strings.Join(synth.CSVHeader(), ",") + "\n" + strings.Join(lines, "\n") + "\n")
}
