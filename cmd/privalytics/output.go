package main

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

// outputFlag is the --output flag every command that prints data shares, so a
// person reads a table and a script reads JSON or CSV of the same answer.
type outputFlag struct{ format string }

func (o *outputFlag) bind(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.format, "output", "o", "table", "how to print the answer: table, json or csv")
}

// check refuses an unknown format before anything is sent to the server, so a
// typo never spends budget on an answer that cannot be printed.
func (o *outputFlag) check() error {
	switch o.format {
	case "table", "json", "csv":
		return nil
	}
	return privalytics.Errorf(privalytics.EINVALID, "--output must be table, json or csv, got %q", o.format)
}

// table is data laid out for a terminal or a spreadsheet. Note is a sentence
// for people (what the figures mean, why rows are missing); CSV leaves it out
// so the file stays machine-readable.
type table struct {
	header []string
	rows   [][]string
	note   string
}

// print writes v as JSON (the server's own shape, nothing lost) or t as a
// table or CSV.
func (o *outputFlag) print(w io.Writer, v any, t table) error {
	switch o.format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "csv":
		cw := csv.NewWriter(w)
		if err := cw.Write(t.header); err != nil {
			return err
		}
		if err := cw.WriteAll(t.rows); err != nil {
			return err
		}
		cw.Flush()
		return cw.Error()
	default:
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(t.header, "\t"))
		for _, r := range t.rows {
			fmt.Fprintln(tw, strings.Join(r, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if t.note != "" {
			fmt.Fprintln(w, t.note)
		}
		return nil
	}
}

// fields lays out one record as a two-column table of name and value.
func fields(pairs ...string) table {
	t := table{header: []string{"field", "value"}}
	for i := 0; i+1 < len(pairs); i += 2 {
		t.rows = append(t.rows, []string{pairs[i], pairs[i+1]})
	}
	return t
}

func num(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

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
