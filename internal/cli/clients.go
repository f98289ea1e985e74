package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
)

// ServerFlags are the flags every client command shares (--server, --key).
// Server is exported because a franchisor's saved state may name the server
// when --server is not given.
type ServerFlags struct{ Server, Key string }

// Bind adds --server and --key to cmd.

func (f *ServerFlags) Bind(cmd *cobra.Command) {
	def := os.Getenv("PRIVALYTICS_SERVER")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	cmd.Flags().StringVar(&f.Server, "server", def, "server URL [env PRIVALYTICS_SERVER]")
	cmd.Flags().StringVar(&f.Key, "key", "", "API key [env PRIVALYTICS_API_KEY]")
}

// Client is the SDK client for the flags, the key falling back to
// PRIVALYTICS_API_KEY.
func (f *ServerFlags) Client() (*client.Client, error) {
	key := f.Key
	if key == "" {
		key = os.Getenv("PRIVALYTICS_API_KEY")
	}
	if key == "" {
		return nil, privalytics.Errorf(privalytics.EUNAUTHORIZED, "no API key: pass --key or set PRIVALYTICS_API_KEY")
	}
	return client.New(f.Server, key), nil
}

func queryCommand() *cobra.Command { return newQueryCommand(false) }

// explainCommand is `query --explain` under its own name: what a query would
// cost and how precise it would be, spending nothing.
func explainCommand() *cobra.Command { return newQueryCommand(true) }

func newQueryCommand(explainOnly bool) *cobra.Command {
	var (
		sf      ServerFlags
		file    string
		raw     bool
		explain bool
		sqlText string
		out     Output
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
				return privalytics.Errorf(privalytics.EINVALID, "give the query once: --sql, or JSON as an argument or --file")
			case sqlText != "":
			case file == "-":
				body, err = io.ReadAll(os.Stdin)
			case file != "":
				body, err = os.ReadFile(file)
			case len(args) == 1:
				body = []byte(args[0])
			default:
				return privalytics.Errorf(privalytics.EINVALID, "give the query as an argument, or --file FILE, or --file - for standard input")
			}
			if err != nil {
				return err
			}
			if raw {
				out.format = "json"
			}
			if err := out.Check(); err != nil {
				return err
			}
			c, err := sf.Client()
			if err != nil {
				return err
			}
			if explain {
				return runExplain(cmd, c, sqlText, body, &out)
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
			return printAnswer(cmd, &out, res)
		},
	}
	sf.Bind(cmd)
	cmd.Flags().StringVar(&file, "file", "", "read the query from this file (- for standard input)")
	cmd.Flags().StringVar(&sqlText, "sql", "", "the query in SQL (SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (…) … FROM events …), sent to POST /v1/sql")
	cmd.Flags().BoolVar(&raw, "json", false, "print the raw JSON answer (same as --output json)")
	out.Bind(cmd)
	if explainOnly {
		cmd.Use = "explain [JSON] | explain --sql 'SELECT WITH DIFFERENTIAL_PRIVACY …'"
		cmd.Short = "Print what a query would cost and how wide its intervals would be, spending nothing"
		cmd.Example = strings.ReplaceAll(cmd.Example, "privalytics query", "privalytics explain")
		explain = true
		return cmd
	}
	cmd.Flags().BoolVar(&explain, "explain", false, "print the cost and the expected interval half-widths instead of running the query (spends nothing)")
	return cmd
}

// runExplain prints what a query would cost and how precise each aggregate
// would be (POST /v1/queries:explain or /v1/sql:explain).
func runExplain(cmd *cobra.Command, c *client.Client, sqlText string, body []byte, o *Output) error {
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
	t := Table{Header: []string{"aggregate", "mechanism", "epsilon", fmt.Sprintf("half_width_%.0f%%", ex.Confidence*100), "note"}}
	for _, a := range ex.Aggregates {
		t.Rows = append(t.Rows, []string{a.Name, a.Mechanism, Num(a.Epsilon), fmt.Sprintf("%.4g", a.HalfWidth), a.Note})
	}
	if o.format == "table" {
		fmt.Fprintf(cmd.OutOrStdout(), "Would cost ε=%g δ=%g (nothing is spent by explaining).\n", ex.Cost.Epsilon, ex.Cost.Delta)
	}
	if ex.Thresholded {
		t.Note = "Group keys come from the data: only those passing DP partition selection will be shown."
	}
	return o.Print(cmd.OutOrStdout(), ex, t)
}

// tuningNote says in one sentence what automatic tuning chose: L0, each tuned
// aggregate's clamp or norm, the share bounding is estimated to remove and the
// factor the cells were corrected by, and the ε spent choosing.
func tuningNote(t *wire.TuningReport) string {
	var parts []string
	for _, a := range t.Aggregates {
		s := fmt.Sprintf("%s clamped to %s per group", a.Name, Num(a.Upper))
		if a.MaxNorm > 0 {
			s = fmt.Sprintf("%s scaled to a norm of %s across groups", a.Name, Num(a.MaxNorm))
		}
		if a.BoundingLoss > 0 {
			s += fmt.Sprintf(", an estimated %.1f%% cut", 100*a.BoundingLoss)
			if a.Correction > 0 {
				s += fmt.Sprintf(" and corrected for (cells ×%.3f)", a.Correction)
			}
		}
		parts = append(parts, s)
	}
	out := fmt.Sprintf("Limits chosen from the data (ε %.4g spent choosing): at most %d groups per customer", t.Epsilon, t.MaxGroups)
	if len(parts) > 0 {
		out += "; " + strings.Join(parts, "; ")
	}
	return out + fmt.Sprintf("; %s noise.", t.Noise)
}

// printAnswer prints a query's answer. A grouped answer with no rows gets a
// sentence saying why: an empty table alone reads as "no data", while the cause
// is partition selection hiding every group too small to release safely.
func printAnswer(cmd *cobra.Command, o *Output, r *wire.Result) error {
	t := Table{}
	t.Header = append(t.Header, r.GroupBy...)
	for _, a := range r.Aggregates {
		t.Header = append(t.Header, a.Name, a.Name+"_lower", a.Name+"_upper")
	}
	subtotals := false
	hidden, reasons := 0, map[string]bool{}
	for _, row := range r.Rows {
		cols := append([]string{}, row.Key...)
		for i := len(cols) - row.Subtotal; i < len(cols) && row.Subtotal > 0; i++ {
			cols[i] = TotalKey // the key a rollup's subtotal sums over
		}
		subtotals = subtotals || row.Subtotal > 0
		for _, c := range row.Cells {
			v := Num(c.Value)
			if c.Hidden {
				hidden++
				reasons[c.Reason] = true
				if o.format != "csv" {
					v += HiddenMark
				}
			}
			cols = append(cols, v, Num(c.Lower), Num(c.Upper))
		}
		t.Rows = append(t.Rows, cols)
	}
	cached := ""
	if r.Cached {
		cached = " (a repeat answered from the cache: no new cost)"
	}
	t.Note = fmt.Sprintf("Cost ε=%g δ=%g%s; intervals at %.0f%% confidence.", r.Cost.Epsilon, r.Cost.Delta, cached, r.Confidence*100)
	if r.Budget != nil {
		t.Note += fmt.Sprintf(" Budget left ε=%.4g.", r.Budget.Remaining.Epsilon)
	}
	if subtotals {
		t.Note += fmt.Sprintf(" Rows keyed %q sum the cells over that key (rollup): no extra ε.", TotalKey)
	}
	if r.Tuning != nil {
		t.Note += " " + tuningNote(r.Tuning)
	}
	if hidden > 0 {
		why := hiddenNote(hidden, reasons)
		t.Note += " " + why
		if o.format == "csv" {
			fmt.Fprintln(cmd.ErrOrStderr(), why)
		}
	}
	if why := suppressedWhy(r); why != "" {
		t.Note = why + "\n" + t.Note
		if o.format == "csv" {
			fmt.Fprintln(cmd.ErrOrStderr(), why)
		}
	}
	return o.Print(cmd.OutOrStdout(), r, t)
}

// HiddenMark follows, in tables, the value of a cell the server marked
// hidden (the dashboard draws it as hidden; its number is mostly noise or
// bias). CSV keeps the bare number and says on stderr how many there are.
const HiddenMark = " (hidden)"

// hiddenNote says how many cells are hidden and why, each distinct reason
// once, in a stable order.
func hiddenNote(n int, reasons map[string]bool) string {
	why := make([]string, 0, len(reasons))
	for r := range reasons {
		if r != "" {
			why = append(why, r)
		}
	}
	slices.Sort(why)
	out := fmt.Sprintf("%d cells are hidden: read them as unknown, not as the number shown", n)
	if n == 1 {
		out = "1 cell is hidden: read it as unknown, not as the number shown"
	}
	if len(why) > 0 {
		out += " (" + strings.Join(why, "; ") + ")"
	}
	return out + "."
}

// TotalKey stands, in tables and CSV, for a key a rollup's subtotal sums
// over (the answer's JSON has "" there and the row's subtotal level).
const TotalKey = "(total)"

// suppressedWhy explains an answer whose groups were all withheld.
func suppressedWhy(r *wire.Result) string {
	if len(r.Rows) > 0 || len(r.GroupBy) == 0 || !r.Thresholded {
		return ""
	}
	return fmt.Sprintf("No group of %s was released: DP partition selection shows a group only when it holds enough distinct customers that no single one can be detected, and none did. Group by fewer columns, widen the filter or time range, or spend more ε.", strings.Join(r.GroupBy, ", "))
}

func tenantCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "tenant", Short: "Manage tenants (operator key)"}
	var (
		sf          ServerFlags
		id, name    string
		eps, delta  float64
		schemaFile  string
		purposeList []string
		period      string
		accounting  string
		createOut   Output
	)
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a tenant and print its first admin key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := createOut.Check(); err != nil {
				return err
			}
			c, err := sf.Client()
			if err != nil {
				return err
			}
			// New tenants budget each month of data by default (issue 16): views
			// then renew every month. zCDP tenants keep one budget (the two do not
			// combine yet); "lifetime" asks for one budget explicitly.
			p := period
			if accounting == "zcdp" && !cmd.Flags().Changed("period") {
				p = "lifetime"
			}
			req := wire.CreateTenantRequest{ID: id, Name: name, Budget: wire.Cost{Epsilon: eps, Delta: delta}, Purposes: purposeList, Period: p, Accounting: accounting}
			if schemaFile != "" {
				raw, err := os.ReadFile(schemaFile)
				if err != nil {
					return err
				}
				var s wire.Schema
				if err := json.Unmarshal(raw, &s); err != nil {
					return privalytics.Errorf(privalytics.EINVALID, "schema file %s is not a JSON schema: %v", schemaFile, err)
				}
				req.Schema = &s
			}
			res, err := c.CreateTenant(cmd.Context(), req)
			if err != nil {
				return err
			}
			if createOut.format != "table" {
				// A script creating tenants needs the admin key as data, not prose.
				return createOut.Print(cmd.OutOrStdout(), res, fields("tenant", res.Tenant.ID, "admin_key_id", res.AdminKey.ID, "admin_key_token", res.AdminKey.Token))
			}
			per := "for all data, all time"
			if res.Tenant.Period == "month" {
				per = "for each month of data"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created tenant %s with budget ε=%g, δ=%g %s.\nIts admin key (shown once):\n\n    %s\n", res.Tenant.ID, res.Tenant.Budget.Epsilon, res.Tenant.Budget.Delta, per, res.AdminKey.Token)
			return nil
		},
	}
	sf.Bind(create)
	createOut.Bind(create)
	create.Flags().StringVar(&id, "id", "", "tenant ID: lower-case letters, digits and -")
	create.Flags().StringVar(&name, "name", "", "display name")
	create.Flags().Float64Var(&eps, "epsilon", 10, "privacy budget ε of each month of data (with --period lifetime: over the data's lifetime)")
	create.Flags().Float64Var(&delta, "delta", 1e-5, "total privacy budget δ")
	create.Flags().StringVar(&schemaFile, "schema", "", "JSON schema file (default: the retail schema)")
	create.Flags().StringSliceVar(&purposeList, "purposes", nil, "declared purposes (default analytics)")
	create.Flags().StringVar(&accounting, "accounting", "", "zcdp: compose answers in ρ (zero-concentrated DP), much tighter for many Gaussian answers; default basic composition")
	create.Flags().StringVar(&period, "period", "month", "month: each month of data has its own budget (the default; a weaker, per-month guarantee, see docs/privacy-budget.md); lifetime: one budget for all data, all time")
	cmd.AddCommand(create, tenantGetCommand(), tenantListCommand())
	return cmd
}

func keysCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Issue, list, revoke and allocate budget to API keys (tenant admin key)"}
	var sf1, sf2, sf3 ServerFlags
	var name, role string
	var listOut, keyOut Output
	create := &cobra.Command{
		Use: "create", Short: "Issue a key with a role (admin, ingest, query, processor)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := keyOut.Check(); err != nil {
				return err
			}
			c, err := sf1.Client()
			if err != nil {
				return err
			}
			k, err := c.CreateKey(cmd.Context(), name, wire.Role(role))
			if err != nil {
				return err
			}
			if keyOut.format != "table" {
				return keyOut.Print(cmd.OutOrStdout(), k, fields("id", k.ID, "name", k.Name, "role", string(k.Role), "token", k.Token))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Issued %s key %s (%s). Token, shown once:\n\n    %s\n", k.Role, k.ID, k.Name, k.Token)
			return nil
		},
	}
	sf1.Bind(create)
	keyOut.Bind(create)
	create.Flags().StringVar(&name, "name", "", "what the key is for, e.g. web-shop or marketing")
	create.Flags().StringVar(&role, "role", "query", "admin, ingest, query or processor")
	list := &cobra.Command{
		Use: "list", Short: "List the tenant's keys", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := listOut.Check(); err != nil {
				return err
			}
			c, err := sf2.Client()
			if err != nil {
				return err
			}
			keys, err := c.Keys(cmd.Context())
			if err != nil {
				return err
			}
			t := Table{Header: []string{"id", "name", "role", "created", "revoked"}}
			for _, k := range keys {
				t.Rows = append(t.Rows, []string{k.ID, k.Name, string(k.Role), stamp(k.CreatedAt), stampPtr(k.RevokedAt)})
			}
			return listOut.Print(cmd.OutOrStdout(), keys, t)
		},
	}
	sf2.Bind(list)
	listOut.Bind(list)
	revoke := &cobra.Command{
		Use: "revoke ID", Short: "Revoke a key", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := sf3.Client()
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
	sf3.Bind(revoke)
	cmd.AddCommand(create, list, revoke, allocateCommand())
	return cmd
}
