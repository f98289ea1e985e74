package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/privalytics/privalytics/analytics"
)

// exportSnapshotCommand writes a tenant's snapshot for a remote engine; the
// logic is analytics.ExportForPurpose.
func exportSnapshotCommand() *cobra.Command {
	var tenant, purpose, out string
	cmd := &cobra.Command{
		Use:   "export-snapshot",
		Short: "Write a tenant's consent-filtered, pseudonymised snapshot to Parquet (server stopped)",
		Long: `Write the events a query for --purpose would see (erased rows and customers
without consent for the purpose left out) to part-*.parquet files in --out, with
the customer column replaced by pseudonyms under a fresh key that is not kept.
This is what a beam job reads (docs/beam.md); run the pipeline on it by hand with
privalytics-beam --input DIR. Takes the data directory's lock, so stop the server first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tenant == "" || out == "" {
				return fmt.Errorf("--tenant and --out are required")
			}
			cfg, err := loadConfig(cmd.Flags(), os.Getenv)
			if err != nil {
				return err
			}
			a, err := openApp(cmd.Context(), cfg, appOptions{})
			if err != nil {
				return err
			}
			defer a.close()
			t, err := a.meta.Tenant(cmd.Context(), tenant)
			if err != nil {
				return err
			}
			rows, files, err := analytics.ExportForPurpose(cmd.Context(), a.events, analytics.NewConsentMasks(a.meta), t, purpose, out)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d rows in %d files to %s\n", rows, len(files), out)
			return nil
		},
	}
	bindFlags(cmd.Flags())
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant ID")
	cmd.Flags().StringVar(&purpose, "purpose", analytics.DefaultPurpose, "the purpose whose consent filters the rows")
	cmd.Flags().StringVar(&out, "out", "", "output directory (created)")
	return cmd
}
