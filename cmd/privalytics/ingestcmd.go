package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
)

func ingestCommand() *cobra.Command {
	var (
		sf          serverFlags
		format      string
		mapping     string
		idempotency string
		quiet       bool
	)
	cmd := &cobra.Command{
		Use:   "ingest FILE",
		Short: "Import a CSV, NDJSON or Parquet file into a running server",
		Long: `ingest uploads FILE to POST /v1/imports with a progress bar. The server maps the
file's columns to the tenant's schema, validates every row, pseudonymises the
customer identifier and stores the rows in durable batches.

--mapping is a preset (uci-online-retail) or a JSON file; without it, source
columns must carry the schema's field names. --format is taken from the file
name (.csv, .csv.gz, .ndjson, .jsonl, .parquet) unless given. With
--idempotency-key, re-running an interrupted import stores only what is missing.`,
		Example: `  privalytics ingest ../shared/data/online_retail_uci.csv.gz --mapping uci-online-retail --key $INGEST_KEY`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := sf.client()
			if err != nil {
				return err
			}
			if format == "" {
				if format, err = formatOf(args[0]); err != nil {
					return err
				}
			}
			opt := client.ImportOptions{Format: format, IdempotencyKey: idempotency}
			if mapping != "" {
				if strings.HasSuffix(mapping, ".json") {
					raw, err := os.ReadFile(mapping)
					if err != nil {
						return err
					}
					if !json.Valid(raw) {
						return fmt.Errorf("mapping file %s is not valid JSON", mapping)
					}
					opt.MappingJSON = string(raw)
				} else {
					opt.Preset = mapping
				}
			}
			rep, err := importFile(cmd.Context(), c, args[0], opt, cmd.ErrOrStderr(), quiet)
			if err != nil {
				return err
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
	sf.bind(cmd)
	cmd.Flags().StringVar(&format, "format", "", "csv, ndjson or parquet (default: from the file name)")
	cmd.Flags().StringVar(&mapping, "mapping", "", "mapping preset (uci-online-retail) or JSON mapping file")
	cmd.Flags().StringVar(&idempotency, "idempotency-key", "", "makes a re-run of the same import store only what is missing")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "no progress bar")
	return cmd
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
