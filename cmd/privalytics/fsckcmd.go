package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/store/audit"
	"github.com/privalytics/privalytics/store/events"
)

// fsckCommand reports damage in a stopped server's data directory; repair
// applies the fixes fsck describes. The logic lives in store/events.
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
	opt, err := offlineEventOptions(cfg)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	dir := filepath.Join(cfg.DataDir, "events")
	ds, err := events.Fsck(dir, opt)
	if err != nil {
		return err
	}
	bad := printDamage(out, ds)
	if _, _, err := audit.VerifyFile(filepath.Join(cfg.DataDir, audit.FileName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(out, "DAMAGED %s: %v\n  no automatic repair: keep the file as evidence and start a new one only after review\n", audit.FileName, err)
		bad++
	}
	if repair && yes && len(ds) > 0 {
		fixed, left, err := events.Repair(dir, opt)
		for _, d := range fixed {
			fmt.Fprintf(out, "REPAIRED %s\n", filepath.Join("events", d.File))
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%d repaired, %d left\n", len(fixed), len(left))
		if len(left) > 0 {
			return privalytics.Errorf(privalytics.ECONFLICT, "%d problems have no automatic repair; see above", len(left))
		}
		return nil
	}
	if bad == 0 {
		fmt.Fprintln(out, "no damage found")
		return nil
	}
	if repair {
		fmt.Fprintln(out, "run again with --yes to apply these repairs")
	}
	return privalytics.Errorf(privalytics.ECONFLICT, "%d damaged files in %s", bad, cfg.DataDir)
}

func printDamage(out io.Writer, ds events.Damages) int {
	for _, d := range ds {
		fmt.Fprintf(out, "DAMAGED %s: %s\n", filepath.Join("events", d.File), d.Problem)
		if d.Repair != "" {
			fmt.Fprintf(out, "  repair would %s\n", d.Repair)
		} else {
			fmt.Fprintln(out, "  no repair can help")
		}
	}
	return len(ds)
}

func eventsFsck(cfg Config, opt events.Options) (events.Damages, error) {
	return events.Fsck(filepath.Join(cfg.DataDir, "events"), opt)
}

// offlineEventOptions are the event store options of an offline tool: the
// master key is read, never created.
func offlineEventOptions(cfg Config) (events.Options, error) {
	opt := events.Options{SyncWrites: true}
	if !cfg.EncryptAtRest {
		return opt, nil
	}
	have, err := inspectDataDir(cfg)
	if err != nil {
		return opt, err
	}
	if _, err := os.Stat(cfg.MasterKeyFile); cfg.MasterKey == "" && os.IsNotExist(err) && !have.any() {
		return opt, nil // an empty directory: nothing is encrypted
	}
	mk, _, err := openMasterKey(cfg, have)
	if err != nil {
		return opt, err
	}
	opt.Encryption = mk
	return opt, nil
}
