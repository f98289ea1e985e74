package main

import (
	"os"

	"github.com/spf13/cobra"
)

// fsckCommand reports damage in a stopped server's data directory; repair
// applies the fixes fsck describes. The logic lives in store/backup (DataDir) over store/events.
func fsckCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fsck",
		Short: "Check a data directory for damaged or missing files (server stopped)",
		Long: `Check every tenant's event files (logs, segments with their checksums, MANIFEST,
KEYS) and the audit log of a data directory, changing nothing. Each problem is
printed with the file it concerns and what 'privalytics repair' would do about it
and give up. The server refuses to load a tenant with such damage rather than
deleting anything. Exits 1 when something is damaged. Takes the data
directory's lock, so stop the server first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runFsck(cmd, false, false)
		},
	}
	bindFlags(cmd.Flags())
	return cmd
}

func repairCommand() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "repair",
		Short: "Apply the fixes fsck describes (server stopped)",
		Long: `Apply the fix of every problem 'privalytics fsck' reports, after printing them.
Nothing is deleted: what a fix gives up (the unreadable end of a log, a damaged
segment) is moved to the tenant's quarantine/ directory. Without --yes it only
prints what it would do. Problems no repair can help (a newer format, a wrong
master key) are left and reported. Take a backup first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runFsck(cmd, true, yes)
		},
	}
	bindFlags(cmd.Flags())
	cmd.Flags().BoolVar(&yes, "yes", false, "apply the fixes (default: only print them)")
	return cmd
}

func runFsck(cmd *cobra.Command, repair, yes bool) error {
	cfg, err := loadConfig(cmd.Flags(), os.Getenv)
	if err != nil {
		return err
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	return dataDir(cfg).FsckAndRepair(cmd.OutOrStdout(), repair, yes)
}
