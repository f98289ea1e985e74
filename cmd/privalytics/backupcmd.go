package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/privalytics/privalytics/store/backup"
)

// backupCommand copies a (running) server's data directory; the logic is in store/backup.
func backupCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup DEST",
		Short: "Copy a data directory consistently, while the server runs",
		Long: `Copy the data directory (events, the SQLite metadata database, the audit log,
the master key file and INSTALLATION) into DEST, a new or empty directory. The
server may keep running: each tenant's events are copied as a crash at one
moment would leave them, the metadata database in one transaction. With
--postgres, back up the database with pg_dump at the same time. A master key
given in PRIVALYTICS_MASTER_KEY is not copied: keep it apart from the backup.
Restore with 'privalytics restore DEST --data-dir NEW'.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd.Flags(), os.Getenv)
			if err != nil {
				return err
			}
			rep, err := backup.Backup(cmd.Context(), dataDir(cfg).Files(), args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, w := range rep.Warnings {
				fmt.Fprintln(out, "warning:", w)
			}
			fmt.Fprintf(out, "backed up %d tenants, %d files, %d bytes into %s\n", rep.Tenants, rep.Files, rep.Bytes, args[0])
			return nil
		},
	}
	bindFlags(cmd.Flags())
	return cmd
}

func restoreCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restore BACKUP",
		Short: "Restore a backup into a new, empty data directory",
		Long: `Copy a directory made by 'privalytics backup' into --data-dir, which must be new
or empty, then check the copied events as 'privalytics fsck' does. Start the
server on it afterwards (with the original master key).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd.Flags(), os.Getenv)
			if err != nil {
				return err
			}
			rep, err := backup.Restore(args[0], cfg.DataDir)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "restored %d files, %d bytes into %s\n", rep.Files, rep.Bytes, cfg.DataDir)
			return dataDir(cfg).CheckRestored(out)
		},
	}
	bindFlags(cmd.Flags())
	return cmd
}
