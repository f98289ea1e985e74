package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
)

// serverFlags are the flags every client command shares.
type serverFlags struct{ server, key string }

func (f *serverFlags) bind(cmd *cobra.Command) {
	def := os.Getenv("PRIVALYTICS_SERVER")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	cmd.Flags().StringVar(&f.server, "server", def, "server URL [env PRIVALYTICS_SERVER]")
	cmd.Flags().StringVar(&f.key, "key", "", "API key [env PRIVALYTICS_API_KEY]")
}

func (f *serverFlags) client() (*client.Client, error) {
	key := f.key
	if key == "" {
		key = os.Getenv("PRIVALYTICS_API_KEY")
	}
	if key == "" {
		return nil, errors.New("no API key: pass --key or set PRIVALYTICS_API_KEY")
	}
	return client.New(f.server, key), nil
}

func queryCommand() *cobra.Command {
	var (
		sf      serverFlags
		file    string
		raw     bool
		explain bool
		sqlText string
	)
	cmd := &cobra.Command{
		Use:   "query [JSON] | query --sql 'SELECT WITH DIFFERENTIAL_PRIVACY …'",
		Short: "Run a differentially private query and print the answer",
		Long: `query sends a JSON query (the argument, or --file, or - for standard input) to
POST /v1/queries and prints the answer as a table with its intervals. It spends
privacy budget. See the README for the query model. With --sql the query is SQL
in the shape of BigQuery's differential-privacy clause (docs/sql.md), sent to
POST /v1/sql; it plans to the same query as its JSON form. With --explain it
prints what the query would cost and how wide each interval would be, without
reading data or spending budget.`,
		Example: `  privalytics query '{"group_by":[{"column":"channel"}],"aggregates":[{"op":"count"}],"epsilon":0.5}'
  privalytics query --sql "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 0.5) channel, COUNT(*) FROM events GROUP BY channel"`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var body []byte
			var err error
			switch {
			case sqlText != "" && (file != "" || len(args) == 1):
				return errors.New("give the query once: --sql, or JSON as an argument or --file")
			case sqlText != "":
			case file == "-":
				body, err = io.ReadAll(os.Stdin)
			case file != "":
				body, err = os.ReadFile(file)
			case len(args) == 1:
				body = []byte(args[0])
			default:
				return errors.New("give the query as an argument, or --file FILE, or --file - for standard input")
			}
			if err != nil {
				return err
			}
			c, err := sf.client()
			if err != nil {
				return err
			}
			if explain {
				return runExplain(cmd, c, sqlText, body, raw)
			}
			var res *wire.Result
			if sqlText != "" {
				res, err = c.SQL(cmd.Context(), sqlText)
			} else {
				res, err = c.QueryJSON(cmd.Context(), body)
			}
			if err != nil {
				return err
			}
			if raw {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			printResult(cmd.OutOrStdout(), "Answer", res)
			return nil
		},
	}
	sf.bind(cmd)
	cmd.Flags().StringVar(&file, "file", "", "read the query from this file (- for standard input)")
	cmd.Flags().StringVar(&sqlText, "sql", "", "the query in SQL (SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (…) … FROM events …), sent to POST /v1/sql")
	cmd.Flags().BoolVar(&raw, "json", false, "print the raw JSON answer")
	cmd.Flags().BoolVar(&explain, "explain", false, "print the cost and the expected interval half-widths instead of running the query (spends nothing)")
	return cmd
}

// runExplain prints what a query would cost and how precise each aggregate
// would be (POST /v1/queries:explain or /v1/sql:explain).
func runExplain(cmd *cobra.Command, c *client.Client, sqlText string, body []byte, raw bool) error {
	var ex *wire.Explanation
	var err error
	if sqlText != "" {
		ex, err = c.ExplainSQL(cmd.Context(), sqlText)
	} else {
		ex, err = c.ExplainJSON(cmd.Context(), body)
	}
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if raw {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(ex)
	}
	fmt.Fprintf(out, "Would cost ε=%g δ=%g (nothing is spent by explaining).\n", ex.Cost.Epsilon, ex.Cost.Delta)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "aggregate\tmechanism\tε\t±%.0f%% interval\t\n", ex.Confidence*100)
	for _, a := range ex.Aggregates {
		fmt.Fprintf(tw, "%s\t%s\t%g\t%.4g\t%s\n", a.Name, a.Mechanism, a.Epsilon, a.HalfWidth, a.Note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if ex.Thresholded {
		fmt.Fprintln(out, "Group keys come from the data: only those passing DP partition selection will be shown.")
	}
	return nil
}

func tenantCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "tenant", Short: "Manage tenants (operator key)"}
	var (
		sf          serverFlags
		id, name    string
		eps, delta  float64
		schemaFile  string
		purposeList []string
		period      string
		accounting  string
	)
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a tenant and print its first admin key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := sf.client()
			if err != nil {
				return err
			}
			req := wire.CreateTenantRequest{ID: id, Name: name, Budget: wire.Cost{Epsilon: eps, Delta: delta}, Purposes: purposeList, Period: period, Accounting: accounting}
			if schemaFile != "" {
				raw, err := os.ReadFile(schemaFile)
				if err != nil {
					return err
				}
				var s wire.Schema
				if err := json.Unmarshal(raw, &s); err != nil {
					return fmt.Errorf("schema file %s: %w", schemaFile, err)
				}
				req.Schema = &s
			}
			res, err := c.CreateTenant(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created tenant %s with budget ε=%g, δ=%g.\nIts admin key (shown once):\n\n    %s\n", res.Tenant.ID, res.Tenant.Budget.Epsilon, res.Tenant.Budget.Delta, res.AdminKey.Token)
			return nil
		},
	}
	sf.bind(create)
	create.Flags().StringVar(&id, "id", "", "tenant ID: lower-case letters, digits and -")
	create.Flags().StringVar(&name, "name", "", "display name")
	create.Flags().Float64Var(&eps, "epsilon", 10, "total privacy budget ε over the data's lifetime")
	create.Flags().Float64Var(&delta, "delta", 1e-5, "total privacy budget δ")
	create.Flags().StringVar(&schemaFile, "schema", "", "JSON schema file (default: the retail schema)")
	create.Flags().StringSliceVar(&purposeList, "purposes", nil, "declared purposes (default analytics)")
	create.Flags().StringVar(&accounting, "accounting", "", "zcdp: compose answers in ρ (zero-concentrated DP), much tighter for many Gaussian answers; default basic composition")
	create.Flags().StringVar(&period, "period", "", "month: give each month of data its own budget (a weaker, per-month guarantee; see docs/privacy-budget.md)")
	cmd.AddCommand(create)
	return cmd
}

func keysCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Issue, list and revoke API keys (tenant admin key)"}
	var sf1, sf2, sf3 serverFlags
	var name, role string
	create := &cobra.Command{
		Use: "create", Short: "Issue a key with a role (admin, ingest, query, processor)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := sf1.client()
			if err != nil {
				return err
			}
			k, err := c.CreateKey(cmd.Context(), name, wire.Role(role))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Issued %s key %s (%s). Token, shown once:\n\n    %s\n", k.Role, k.ID, k.Name, k.Token)
			return nil
		},
	}
	sf1.bind(create)
	create.Flags().StringVar(&name, "name", "", "what the key is for, e.g. web-shop or marketing")
	create.Flags().StringVar(&role, "role", "query", "admin, ingest, query or processor")
	list := &cobra.Command{
		Use: "list", Short: "List the tenant's keys", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := sf2.client()
			if err != nil {
				return err
			}
			keys, err := c.Keys(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tROLE\tCREATED\tREVOKED")
			for _, k := range keys {
				rev := "-"
				if k.RevokedAt != nil {
					rev = k.RevokedAt.Format("2006-01-02 15:04")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Role, k.CreatedAt.Format("2006-01-02 15:04"), rev)
			}
			return tw.Flush()
		},
	}
	sf2.bind(list)
	revoke := &cobra.Command{
		Use: "revoke ID", Short: "Revoke a key", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := sf3.client()
			if err != nil {
				return err
			}
			if err := c.RevokeKey(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Revoked key %s.\n", args[0])
			return nil
		},
	}
	sf3.bind(revoke)
	cmd.AddCommand(create, list, revoke)
	return cmd
}
