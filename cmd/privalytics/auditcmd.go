package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/privalytics/privalytics/internal/cli"
	"github.com/privalytics/privalytics/store/audit"
)

func auditCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Check and read the audit trail"}
	var dataDir, file string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check that no audit entry was edited, deleted or reordered",
		Long: `verify reads the audit log of a data directory (or --file) and checks the hash
chain entry by entry. It exits with status 1 and names the first bad entry if
anything was edited, deleted, inserted or reordered; otherwise it prints the
number of entries and the head hash. Record the head elsewhere from time to
time: the chain cannot show that the newest entries were cut off the end.
It reads the file only, so it can run while the server runs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := file
			if path == "" {
				path = filepath.Join(dataDir, audit.FileName)
			}
			if _, err := os.Stat(path); err != nil {
				return fmt.Errorf("no audit log at %s: %w (pass --data-dir or --file)", path, err)
			}
			n, head, err := audit.VerifyFile(path)
			var ve *audit.VerifyError
			if errors.As(err, &ve) {
				fmt.Fprintf(cmd.OutOrStdout(), "FAILED: %d entries verified, then:\n", n)
				return fmt.Errorf("%s: %w", path, ve)
			} else if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "OK: %d entries, chain intact\nhead: seq %d hash %s\n", n, n, head)
			return nil
		},
	}
	verify.Flags().StringVar(&dataDir, "data-dir", envOr("PRIVALYTICS_DATA_DIR", "privalytics-data"), "the server's data directory [env PRIVALYTICS_DATA_DIR]")
	verify.Flags().StringVar(&file, "file", "", "the audit log file (overrides --data-dir)")

	cmd.AddCommand(verify, cli.AuditListCommand())
	return cmd
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
