package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/he/federation"
	"github.com/privalytics/privalytics/internal/cli"
)

// The franchise commands run the federation protocol (docs/franchise.md):
// the franchisor (a tenant admin) creates the federation and rounds and
// decrypts results; each location runs setup once and contribute per round.

// Every location command runs federation.Driver over the Go SDK.
var (
	_ federation.Transport           = (*client.Client)(nil)
	_ federation.FranchisorTransport = (*client.Client)(nil)
)

func franchiseCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "franchise",
		Short: "Pool franchise locations' figures under multiparty encryption and distributed DP",
		Long: `franchise runs the federation protocol. The franchisor (a tenant admin) runs
create, round and result; each location runs setup once and contribute for each
round. The server relays and adds ciphertexts; it never sees a location's figures.
See docs/franchise.md.`,
	}
	cmd.AddCommand(franchiseCreateCommand(), franchiseSetupCommand(), franchiseRoundCommand(), franchiseContributeCommand(), franchiseResultCommand(), franchiseBenchCommand(), franchiseScoreCommand())
	return cmd
}

func franchiseCreateCommand() *cobra.Command {
	var (
		sf        cli.ServerFlags
		name, dir string
		locations []string
		threshold int
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a federation (franchisor, tenant admin key)",
		Long: `create draws the franchisor's key pair into DIR/franchisor.key (0600), creates the
federation on the server and writes one credentials file per location into
DIR/locations/NAME.json (0600). Hand each location its file, by a channel you trust.`,
		Example: `  privalytics franchise create --key $ADMIN_KEY --name north --locations leeds,york,hull --threshold 2 --dir ./north`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := sf.Client()
			if err != nil {
				return err
			}
			id, err := federation.Create(cmd.Context(), c, sf.Server, dir, name, locations, threshold)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Federation %s: %d locations, threshold %d.\nFranchisor key: %s\nLocation credentials: %s\n",
				id, len(locations), threshold, filepath.Join(dir, federation.FranchisorKeyFile), filepath.Join(dir, federation.LocationsDir))
			return nil
		},
	}
	sf.Bind(cmd)
	cmd.Flags().StringVar(&name, "name", "", "federation name")
	cmd.Flags().StringSliceVar(&locations, "locations", nil, "location names, comma-separated")
	cmd.Flags().IntVar(&threshold, "threshold", 0, "t: how many live locations decrypt a round")
	cmd.Flags().StringVar(&dir, "dir", ".", "directory for the franchisor's key and the locations' credentials")
	return cmd
}

// locationDriver loads a location's credentials and runs the protocol for
// that location over the Go SDK.
func locationDriver(path string) (*federation.Credentials, *federation.Driver, error) {
	cred, err := federation.ReadCredentials(path)
	if err != nil {
		return nil, nil, err
	}
	return cred, cred.Driver(client.New(cred.Server, cred.Token)), nil
}

func franchiseSetupCommand() *cobra.Command {
	var (
		credPath, secrets string
		timeout           time.Duration
	)
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Join the federation's key generation (location)",
		Long: `setup draws this location's secret key share, sends its share of the collective
public key, seals its t-of-N Shamir shares to the other locations, waits for
theirs and writes its secrets (0600) to --secrets. Every location must run it;
it waits for the others up to --timeout. Shares are accepted once: if setup is
interrupted after sending, the federation has to be created again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			cred, d, err := locationDriver(credPath)
			if err != nil {
				return err
			}
			out := federation.SecretsPath(credPath, secrets)
			if err := d.SetupFile(ctx, out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Location %s (%d) is set up in federation %s; secrets in %s.\n", cred.Location, cred.Index, cred.Federation, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&credPath, "credentials", "", "this location's credentials file (from franchise create)")
	cmd.Flags().StringVar(&secrets, "secrets", "", "where to write this location's secrets (default: next to the credentials, .secrets)")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long to wait for the other locations")
	_ = cmd.MarkFlagRequired("credentials")
	return cmd
}

func franchisorClient(sf *cli.ServerFlags, changed bool, dir string) (*federation.FranchisorState, *client.Client, error) {
	st, err := federation.ReadFranchisorState(dir)
	if err != nil {
		return nil, nil, err
	}
	if !changed {
		sf.Server = st.Server
	}
	c, err := sf.Client()
	return st, c, err
}

func franchiseRoundCommand() *cobra.Command {
	var (
		sf                cli.ServerFlags
		dir, query        string
		contribute, decry time.Duration
	)
	cmd := &cobra.Command{
		Use:   "round",
		Short: "Publish a federated query as the next round (franchisor)",
		Long: `round publishes a query (JSON, or @FILE) to the federation in DIR. Locations then
run contribute --round N. The query is public; see docs/franchise.md.`,
		Example: `  privalytics franchise round --key $ADMIN_KEY --dir ./north --query '{"subject_column":"customer","category_column":"category","value_column":"cents","categories":["bread","cake"],"aggregates":["count","sum"],"lower":0,"upper":5000,"max_rows_per_subject":8,"epsilon":1,"delta":1e-6}'`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, c, err := franchisorClient(&sf, cmd.Flags().Changed("server"), dir)
			if err != nil {
				return err
			}
			q, err := federation.ParseQuery(query)
			if err != nil {
				return err
			}
			rv, err := c.CreateRound(cmd.Context(), st.Federation, federation.RoundRequest{Query: q.Wire(), ContributeSeconds: contribute.Seconds(), DecryptSeconds: decry.Seconds()})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Round %d of federation %s is collecting until %s.\n", rv.Number, st.Federation, rv.ContributeUntil.Format(time.RFC3339))
			return nil
		},
	}
	sf.Bind(cmd)
	cmd.Flags().StringVar(&dir, "dir", ".", "the federation's directory (from franchise create)")
	cmd.Flags().StringVar(&query, "query", "", "the query as JSON, or @FILE")
	cmd.Flags().DurationVar(&contribute, "contribute-for", 10*time.Minute, "how long contributions are accepted")
	cmd.Flags().DurationVar(&decry, "decrypt-for", 10*time.Minute, "how long the decrypting locations have after that")
	return cmd
}

func franchiseContributeCommand() *cobra.Command {
	var (
		credPath, secrets, data string
		round                   int
		noDecrypt               bool
		timeout                 time.Duration
	)
	cmd := &cobra.Command{
		Use:   "contribute",
		Short: "Contribute this location's noised, encrypted aggregates to a round, then help decrypt (location)",
		Long: `contribute reads the round's published query, computes this location's bounded
aggregates over --data (a CSV file with a header row), adds its share of the
distributed DP noise, encrypts under the collective key and uploads once. It
then declares itself live for decryption and, if chosen among the first t,
sends its flooded key-switching share. --no-decrypt stops after uploading.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			cred, d, err := locationDriver(credPath)
			if err != nil {
				return err
			}
			decrypt, err := d.ContributeFile(ctx, round, federation.SecretsPath(credPath, secrets), data)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Location %s contributed to round %d.\n", cred.Location, round)
			if noDecrypt {
				return nil
			}
			out, err := decrypt()
			if err != nil {
				return err
			}
			fmt.Fprintln(w, out.Describe(cred.Location, round))
			return nil
		},
	}
	cmd.Flags().StringVar(&credPath, "credentials", "", "this location's credentials file")
	cmd.Flags().StringVar(&secrets, "secrets", "", "this location's secrets (default: next to the credentials, .secrets)")
	cmd.Flags().StringVar(&data, "data", "", "this location's data: a CSV file with a header row")
	cmd.Flags().IntVar(&round, "round", 0, "the round to contribute to")
	cmd.Flags().BoolVar(&noDecrypt, "no-decrypt", false, "only contribute; do not take part in decryption")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "how long to wait for the round")
	_ = cmd.MarkFlagRequired("credentials")
	_ = cmd.MarkFlagRequired("data")
	_ = cmd.MarkFlagRequired("round")
	return cmd
}

func franchiseResultCommand() *cobra.Command {
	var (
		sf      cli.ServerFlags
		dir     string
		round   int
		asJSON  bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "result",
		Short: "Wait for a round and decrypt its DP total (franchisor)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			st, c, err := franchisorClient(&sf, cmd.Flags().Changed("server"), dir)
			if err != nil {
				return err
			}
			res, err := st.Collect(ctx, c, dir, round)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			return res.WriteTable(cmd.OutOrStdout())
		},
	}
	sf.Bind(cmd)
	cmd.Flags().StringVar(&dir, "dir", ".", "the federation's directory (from franchise create)")
	cmd.Flags().IntVar(&round, "round", 0, "the round to decrypt")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "how long to wait for the round")
	_ = cmd.MarkFlagRequired("round")
	return cmd
}
