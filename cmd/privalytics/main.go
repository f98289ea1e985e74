// Command privalytics is the one binary of Privalytics: the server (serve), a
// self-contained demonstration (demo), the clients a business uses from a
// terminal (ingest, and from internal/cli query, explain, tenant, keys, budget,
// consent, subjects, retention, audit list, version; each a thin call of the
// Go SDK), and the benchmark (bench).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := rootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, describe(err))
		os.Exit(1)
	}
}

// describe renders an error for a terminal: the message, then any details
// (the line and field of a bad row, the budget left).
func describe(err error) string {
	// Errors come from this process (*privalytics.Error) or from the server
	// through the SDK (*wire.Error); both read the same.
	var msg string
	var details map[string]any
	var e *privalytics.Error
	var we *wire.Error
	switch {
	case errors.As(err, &e):
		msg, details = e.Message, e.Details
	case errors.As(err, &we):
		msg, details = we.Message, we.Details
	default:
		return "privalytics: " + err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "privalytics: %s", msg)
	keys := make([]string, 0, len(details))
	for k := range details {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %s: %v", k, details[k])
	}
	return b.String()
}

func rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "privalytics",
		Short:         "Privacy-preserving analytics for small businesses",
		Long:          "Privalytics ingests purchase and behavioural events and answers aggregate questions with differential privacy.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCommand(), demoCommand(), ingestCommand(), benchCommand(), franchiseCommand(), auditCommand(), heCommand(), fsckCommand(), repairCommand(), backupCommand(), restoreCommand(), learnCommand(), exportSnapshotCommand())
	root.AddCommand(cli.Commands()...)
	return root
}

func serveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the Privalytics server",
		Long: `Run the Privalytics server. Settings come from defaults, then the JSON file
given by --config, then PRIVALYTICS_* environment variables, then flags.
The first start creates the data directory, the metadata database, a master key
(0600) and prints the operator API key once.

With --role processor the server also accepts encrypted datasets from outside
data owners (POST /v1/he/datasets) and runs jobs on them without being able to
read them; give the owner a key with role processor. Datasets are held in
memory (--he-max-held-bytes) and are gone after a restart.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd.Flags(), os.Getenv)
			if err != nil {
				return err
			}
			return runServe(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
	bindFlags(cmd.Flags())
	return cmd
}

func runServe(ctx context.Context, cfg Config, out interface{ Write([]byte) (int, error) }) error {
	app, err := openApp(ctx, cfg, appOptions{})
	if err != nil {
		return err
	}
	if app.OperatorToken != "" {
		fmt.Fprintf(out, "\nFirst start: created the operator API key. It is shown only now; keep it safe.\n\n    %s\n\nCreate a tenant with it:  privalytics tenant create --server %s --key <operator key> --id shop --epsilon 10\n\n", app.OperatorToken, app.URL())
	}
	return app.serve(ctx)
}
