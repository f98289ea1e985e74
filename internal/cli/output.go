package cli

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/privalytics/privalytics"
)

// Output is the --output flag every command that prints data shares (the
// server commands in cmd/privalytics too), so a
// person reads a table and a script reads JSON or CSV of the same answer.
type Output struct{ format string }

// Bind adds --output (-o) to cmd.
func (o *Output) Bind(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.format, "output", "o", "table", "how to print the answer: table, json or csv")
}

// Format is the chosen format: table, json or csv. A command prints prose for
// a person (table) and data for a script (json, csv).
func (o *Output) Format() string { return o.format }

// Check refuses an unknown format before anything is sent to the server, so a
// typo never spends budget on an answer that cannot be printed.
func (o *Output) Check() error {
	switch o.format {
	case "table", "json", "csv":
		return nil
	}
	return privalytics.Errorf(privalytics.EINVALID, "--output must be table, json or csv, got %q", o.format)
}

// Table is data laid out for a terminal or a spreadsheet. Note is a sentence
// for people (what the figures mean, why rows are missing); CSV leaves it out
// so the file stays machine-readable.
type Table struct {
	Header []string
	Rows   [][]string
	Note   string
}

// Print writes v as JSON (the server's own shape, nothing lost) or t as a
// table or CSV.
func (o *Output) Print(w io.Writer, v any, t Table) error {
	switch o.format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "csv":
		cw := csv.NewWriter(w)
		if err := cw.Write(t.Header); err != nil {
			return err
		}
		if err := cw.WriteAll(t.Rows); err != nil {
			return err
		}
		cw.Flush()
		return cw.Error()
	default:
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(t.Header, "\t"))
		for _, r := range t.Rows {
			fmt.Fprintln(tw, strings.Join(r, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if t.Note != "" {
			fmt.Fprintln(w, t.Note)
		}
		return nil
	}
}

// fields lays out one record as a two-column table of name and value.
func fields(pairs ...string) Table {
	t := Table{Header: []string{"field", "value"}}
	for i := 0; i+1 < len(pairs); i += 2 {
		t.Rows = append(t.Rows, []string{pairs[i], pairs[i+1]})
	}
	return t
}

// Num prints a float in the fewest digits that read back exactly.
func Num(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func stampPtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return stamp(*t)
}
