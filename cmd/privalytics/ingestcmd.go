package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/ingest"
	"github.com/privalytics/privalytics/internal/cli"
)

func ingestCommand() *cobra.Command {
	var (
		sf          cli.ServerFlags
		format      string
		mapping     string
		idempotency string
		quiet       bool
		out         cli.Output
		dryRun      bool
		schemaFile  string
		timeZone    string
		show        int
	)
	cmd := &cobra.Command{
		Use:   "ingest FILE",
		Short: "Import a CSV, NDJSON or Parquet file into a running server",
		Long: `ingest uploads FILE to POST /v1/imports with a progress bar. The server maps the
file's columns to the tenant's schema, validates every row, pseudonymises the
customer identifier and stores the rows in durable batches.

--mapping is a preset or a JSON file (see ingest.Mapping); without it, source
columns must carry the schema's field names. Presets:
` + ingest.PresetHelp() + `--time-zone sets the zone of timestamps the mapping gives none (presets for
exports in the shop's local time need it). --format is taken from the file
name (.csv, .csv.gz, .ndjson, .jsonl, .parquet) unless given. With
--idempotency-key, re-running an interrupted import stores only what is missing.

--dry-run reads the file here and stores nothing: it prints the first rows as
they would be stored, the rows kept and skipped by reason, the customers and the
time span, and warns when the customer column does not look like one person.
It validates against --schema (a JSON schema file), else the tenant's schema
from the server, else the default retail schema.`,
		Example: `  privalytics ingest ../shared/data/online_retail_uci.csv.gz --mapping uci-online-retail --key $INGEST_KEY
  privalytics ingest orders_export.csv --mapping shopify-orders --dry-run`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.Check(); err != nil {
				return err
			}
			if format == "" {
				var err error
				if format, err = formatOf(args[0]); err != nil {
					return err
				}
			}
			var m *ingest.Mapping
			if mapping != "" {
				mm, err := ingest.ResolveMapping(mapping)
				if err != nil {
					return err
				}
				m = &mm
			}
			if timeZone != "" {
				if m == nil {
					m = &ingest.Mapping{}
				}
				m.TimeZone = timeZone
			}
			if dryRun {
				schema, source, err := dryRunSchema(cmd.Context(), sf, schemaFile)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "dry run against %s\n", source)
				rep, err := ingest.DryRunFile(cmd.Context(), args[0], format, schema, m, show)
				if err != nil {
					return err
				}
				if err := rep.Print(cmd.OutOrStdout()); err != nil {
					return err
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), "The subject column shows pseudonyms under a throwaway key; the server's differ.")
				return err
			}
			c, err := sf.Client()
			if err != nil {
				return err
			}
			opt := client.ImportOptions{Format: format, IdempotencyKey: idempotency}
			if m != nil {
				raw, err := json.Marshal(m)
				if err != nil {
					return err
				}
				opt.MappingJSON = string(raw)
			}
			rep, err := importFile(cmd.Context(), c, args[0], opt, cmd.ErrOrStderr(), quiet)
			if err != nil {
				return err
			}
			if out.Format() != "table" {
				// For scripts: the report itself, skipped reasons as "reason=n" pairs in CSV.
				reasons := make([]string, 0, len(rep.SkippedReasons))
				for _, r := range slices.Sorted(maps.Keys(rep.SkippedReasons)) {
					reasons = append(reasons, fmt.Sprintf("%s=%d", r, rep.SkippedReasons[r]))
				}
				return out.Print(cmd.OutOrStdout(), rep, cli.Table{Header: []string{"rows", "batches", "seconds", "skipped", "skipped_reasons"},
					Rows: [][]string{{strconv.Itoa(rep.Rows), strconv.Itoa(rep.Batches), cli.Num(rep.Seconds), strconv.Itoa(rep.Skipped), strings.Join(reasons, " ")}}})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Imported %d rows in %d durable batches (%.1fs, %.0f rows/s); skipped %d", rep.Rows, rep.Batches, rep.Seconds, float64(rep.Rows)/rep.Seconds, rep.Skipped)
			if len(rep.SkippedReasons) > 0 {
				b, _ := json.Marshal(rep.SkippedReasons)
				fmt.Fprintf(cmd.OutOrStdout(), " %s", b)
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return nil
		},
	}
	sf.Bind(cmd)
	cmd.Flags().StringVar(&format, "format", "", "csv, ndjson or parquet (default: from the file name)")
	cmd.Flags().StringVar(&mapping, "mapping", "", "mapping preset or JSON mapping file")
	cmd.Flags().StringVar(&idempotency, "idempotency-key", "", "makes a re-run of the same import store only what is missing")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "no progress bar")
	out.Bind(cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "read the file here, store nothing, print the first rows and a summary")
	cmd.Flags().StringVar(&schemaFile, "schema", "", "with --dry-run: the tenant schema as a JSON file")
	cmd.Flags().StringVar(&timeZone, "time-zone", "", "IANA zone of timestamps the mapping gives none, e.g. Europe/Berlin")
	cmd.Flags().IntVar(&show, "show", 10, "with --dry-run: rows to print")
	return cmd
}

// dryRunSchema finds the schema a dry run validates against, and says which.
func dryRunSchema(ctx context.Context, sf cli.ServerFlags, file string) (privalytics.Schema, string, error) {
	if file != "" {
		raw, err := os.ReadFile(file)
		if err != nil {
			return privalytics.Schema{}, "", err
		}
		var s privalytics.Schema
		if err := json.Unmarshal(raw, &s); err != nil {
			return privalytics.Schema{}, "", fmt.Errorf("--schema %s: not a JSON schema: %v", file, err)
		}
		return s, "the schema in " + file, nil
	}
	if c, err := sf.Client(); err == nil {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if t, err := c.Tenant(ctx); err == nil {
			// The wire schema and the domain schema share one JSON form.
			var s privalytics.Schema
			raw, _ := json.Marshal(t.Schema)
			if err := json.Unmarshal(raw, &s); err == nil {
				return s, "the schema of tenant " + t.ID, nil
			}
		}
	}
	return privalytics.DefaultRetailSchema(), "the default retail schema (no --schema, no server reachable with --key)", nil
}

func formatOf(path string) (string, error) {
	name := strings.TrimSuffix(strings.ToLower(filepath.Base(path)), ".gz")
	switch filepath.Ext(name) {
	case ".csv":
		return "csv", nil
	case ".ndjson", ".jsonl", ".json":
		return "ndjson", nil
	case ".parquet":
		return "parquet", nil
	}
	return "", errors.New("cannot tell the format from the file name; pass --format csv, ndjson or parquet")
}

// importFile streams the file to the server with a progress bar over the bytes sent.
func importFile(ctx context.Context, c *client.Client, path string, opt client.ImportOptions, progress io.Writer, quiet bool) (*wire.ImportReport, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var body io.Reader = f
	if !quiet && isTerminal(progress) {
		bar := progressbar.NewOptions64(fi.Size(), progressbar.OptionSetWriter(progress), progressbar.OptionSetDescription("uploading "+filepath.Base(path)),
			progressbar.OptionShowBytes(true), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
		defer bar.Finish()
		r := progressbar.NewReader(f, bar)
		body = &r
	}
	return c.Import(ctx, body, fi.Size(), opt)
}
