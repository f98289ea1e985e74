package cli

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api"
	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
)

// The commands in this file are thin: parse flags, make one SDK call, print
// through the shared printer. Anything the API can do a business can do from a
// terminal, with the same key and the same error messages.

// sdkRun is what an SDK command does once its flags are read: connect when it
// needs the server (after refusing bad arguments, so their message comes first)
// and answer with a value and its table, or nil when it wrote its own output.
type sdkRun func(cmd *cobra.Command, args []string, out *Output, connect func() (*client.Client, error)) (any, Table, error)

// sdkCommand completes cmd as a command that talks to a server through the Go
// SDK: it binds the server flags and --output, refuses an unknown --output before
// anything else (a typo spends no budget), and prints what run answers.
func sdkCommand(cmd *cobra.Command, run sdkRun) *cobra.Command {
	var (
		sf  ServerFlags
		out Output
	)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.Check(); err != nil {
			return err
		}
		v, t, err := run(cmd, args, &out, sf.Client)
		if err != nil || v == nil {
			return err
		}
		return out.Print(cmd.OutOrStdout(), v, t)
	}
	sf.Bind(cmd)
	out.Bind(cmd)
	return cmd
}

func versionCommand() *cobra.Command {
	var out Output
	cmd := &cobra.Command{
		Use: "version", Short: "Print the version, the commit and the Go version of this binary", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.Check(); err != nil {
				return err
			}
			b := api.Build()
			return out.Print(cmd.OutOrStdout(), b, fields("version", b.Version, "commit", b.Commit, "go", b.GoVersion))
		},
	}
	out.Bind(cmd)
	return cmd
}

// tenantTable lays out a tenant's settings, one per line.
func tenantTable(t *wire.Tenant) Table {
	acc := t.Accounting
	if acc == "" {
		acc = "basic"
	}
	ret := "keep until erased"
	if t.RetentionDays > 0 {
		ret = strconv.Itoa(t.RetentionDays) + " days"
	}
	return fields("id", t.ID, "name", t.Name, "budget_epsilon", Num(t.Budget.Epsilon), "budget_delta", Num(t.Budget.Delta),
		"accounting", acc, "period", orDash(t.Period), "purposes", strings.Join(t.Purposes, " "),
		"retention", ret, "columns", strconv.Itoa(len(t.Schema.Columns)), "created", stamp(t.CreatedAt))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// tenantGetCommand prints one tenant: any tenant for the operator key, the
// key's own tenant for a tenant key.
func tenantGetCommand() *cobra.Command {
	return sdkCommand(&cobra.Command{
		Use:   "get [ID]",
		Short: "Print a tenant's settings (its own with a tenant key; any with the operator key and an ID)",
		Args:  cobra.MaximumNArgs(1),
	}, func(cmd *cobra.Command, args []string, _ *Output, connect func() (*client.Client, error)) (any, Table, error) {
		c, err := connect()
		if err != nil {
			return nil, Table{}, err
		}
		var t *wire.Tenant
		if len(args) == 1 {
			t, err = c.TenantByID(cmd.Context(), args[0])
		} else {
			t, err = c.Tenant(cmd.Context())
		}
		if err != nil {
			return nil, Table{}, err
		}
		return t, tenantTable(t), nil
	})
}

func tenantListCommand() *cobra.Command {
	return sdkCommand(&cobra.Command{Use: "list", Short: "List every tenant on the server (operator key)", Args: cobra.NoArgs},
		func(cmd *cobra.Command, _ []string, _ *Output, connect func() (*client.Client, error)) (any, Table, error) {
			c, err := connect()
			if err != nil {
				return nil, Table{}, err
			}
			list, err := c.Tenants(cmd.Context())
			if err != nil {
				return nil, Table{}, err
			}
			t := Table{Header: []string{"id", "name", "budget_epsilon", "budget_delta", "accounting", "period", "retention_days", "created"}}
			for _, tn := range list {
				t.Rows = append(t.Rows, []string{tn.ID, tn.Name, Num(tn.Budget.Epsilon), Num(tn.Budget.Delta), orDash(tn.Accounting), orDash(tn.Period), strconv.Itoa(tn.RetentionDays), stamp(tn.CreatedAt)})
			}
			return list, t, nil
		})
}

func allocateCommand() *cobra.Command {
	var eps, delta float64
	cmd := sdkCommand(&cobra.Command{
		Use:   "allocate KEY_ID --epsilon E [--delta D]",
		Short: "Reserve part of the tenant's budget for one key (admin key)",
		Args:  cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string, _ *Output, connect func() (*client.Client, error)) (any, Table, error) {
		c, err := connect()
		if err != nil {
			return nil, Table{}, err
		}
		kb, err := c.Allocate(cmd.Context(), args[0], wire.Cost{Epsilon: eps, Delta: delta})
		if err != nil {
			return nil, Table{}, err
		}
		return kb, keyBudgetTable(kb), nil
	})
	cmd.Flags().Float64Var(&eps, "epsilon", 0, "ε reserved for the key")
	cmd.Flags().Float64Var(&delta, "delta", 0, "δ reserved for the key")
	return cmd
}

func keyBudgetTable(kb *wire.KeyBudget) Table {
	return fields("key_id", kb.KeyID, "shared", strconv.FormatBool(kb.Shared),
		"total_epsilon", Num(kb.Total.Epsilon), "spent_epsilon", Num(kb.Spent.Epsilon), "remaining_epsilon", Num(kb.Remaining.Epsilon),
		"total_delta", Num(kb.Total.Delta), "spent_delta", Num(kb.Spent.Delta), "remaining_delta", Num(kb.Remaining.Delta))
}

func budgetCommand() *cobra.Command {
	cmd := sdkCommand(&cobra.Command{Use: "budget", Short: "Print the tenant's privacy budget: total, spent, left (query or admin key)", Args: cobra.NoArgs},
		func(cmd *cobra.Command, _ []string, _ *Output, connect func() (*client.Client, error)) (any, Table, error) {
			c, err := connect()
			if err != nil {
				return nil, Table{}, err
			}
			b, err := c.Budget(cmd.Context())
			if err != nil {
				return nil, Table{}, err
			}
			t := Table{Header: []string{"period", "total_epsilon", "spent_epsilon", "remaining_epsilon", "total_delta", "spent_delta", "remaining_delta"}}
			t.Rows = append(t.Rows, []string{"lifetime", Num(b.Total.Epsilon), Num(b.Spent.Epsilon), Num(b.Remaining.Epsilon), Num(b.Total.Delta), Num(b.Spent.Delta), Num(b.Remaining.Delta)})
			for _, p := range b.Periods {
				t.Rows = append(t.Rows, []string{p.Period, Num(b.Total.Epsilon), Num(p.Spent.Epsilon), Num(p.Remaining.Epsilon), Num(b.Total.Delta), Num(p.Spent.Delta), Num(p.Remaining.Delta)})
			}
			if b.Allocated.Epsilon > 0 {
				t.Note = fmt.Sprintf("ε=%g of it is reserved for keys with their own allocation.", b.Allocated.Epsilon)
			}
			if b.Accounting == "zcdp" {
				t.Note = strings.TrimSpace(t.Note + " The tenant composes in ρ (zCDP); ε figures are conversions at its δ.")
			}
			return b, t, nil
		})

	var offset, limit int
	charges := sdkCommand(&cobra.Command{Use: "charges", Short: "List the privacy ledger's charges, newest first", Args: cobra.NoArgs},
		func(cmd *cobra.Command, _ []string, _ *Output, connect func() (*client.Client, error)) (any, Table, error) {
			c, err := connect()
			if err != nil {
				return nil, Table{}, err
			}
			list, err := c.Charges(cmd.Context(), offset, limit)
			if err != nil {
				return nil, Table{}, err
			}
			t := Table{Header: []string{"id", "time", "key_id", "epsilon", "delta", "mechanisms", "refunded", "periods"}}
			for _, ch := range list {
				t.Rows = append(t.Rows, []string{ch.ID, stamp(ch.Time), ch.KeyID, Num(ch.Cost.Epsilon), Num(ch.Cost.Delta), ch.Mechanisms, strconv.FormatBool(ch.Refunded), strings.Join(ch.Periods, " ")})
			}
			return list, t, nil
		})
	changes := sdkCommand(&cobra.Command{Use: "changes", Short: "List grants and allocations, newest first (admin key)", Args: cobra.NoArgs},
		func(cmd *cobra.Command, _ []string, _ *Output, connect func() (*client.Client, error)) (any, Table, error) {
			c, err := connect()
			if err != nil {
				return nil, Table{}, err
			}
			list, err := c.BudgetChanges(cmd.Context(), offset, limit)
			if err != nil {
				return nil, Table{}, err
			}
			t := Table{Header: []string{"id", "time", "kind", "key_id", "epsilon", "delta", "by_key"}}
			for _, ch := range list {
				t.Rows = append(t.Rows, []string{ch.ID, stamp(ch.Time), ch.Kind, orDash(ch.KeyID), Num(ch.Amount.Epsilon), Num(ch.Amount.Delta), ch.ActorKeyID})
			}
			return list, t, nil
		})
	for _, page := range []*cobra.Command{charges, changes} {
		page.Flags().IntVar(&offset, "offset", 0, "entries to skip")
		page.Flags().IntVar(&limit, "limit", 50, "entries to print (at most 500)")
	}

	var addEps, addDelta float64
	grant := sdkCommand(&cobra.Command{Use: "grant --epsilon E [--delta D]", Short: "Add to the tenant's total budget (admin key; a weaker guarantee, recorded)", Args: cobra.NoArgs},
		func(cmd *cobra.Command, _ []string, _ *Output, connect func() (*client.Client, error)) (any, Table, error) {
			c, err := connect()
			if err != nil {
				return nil, Table{}, err
			}
			b, err := c.Grant(cmd.Context(), wire.Cost{Epsilon: addEps, Delta: addDelta})
			if err != nil {
				return nil, Table{}, err
			}
			return b, fields("total_epsilon", Num(b.Total.Epsilon), "remaining_epsilon", Num(b.Remaining.Epsilon), "total_delta", Num(b.Total.Delta), "remaining_delta", Num(b.Remaining.Delta)), nil
		})
	grant.Flags().Float64Var(&addEps, "epsilon", 0, "ε to add")
	grant.Flags().Float64Var(&addDelta, "delta", 0, "δ to add")
	cmd.AddCommand(charges, changes, grant)
	return cmd
}

func consentCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "consent", Short: "Record customers' consent decisions and read a customer's standing"}
	var (
		customer, purpose string
		source            string
		granted           bool
	)
	record := sdkCommand(&cobra.Command{
		Use:   "record --customer ID --purpose P --granted=true|false",
		Short: "Record one customer's decision for one purpose (ingest or admin key)",
		Args:  cobra.NoArgs,
	}, func(cmd *cobra.Command, _ []string, _ *Output, connect func() (*client.Client, error)) (any, Table, error) {
		if !cmd.Flags().Changed("granted") {
			return nil, Table{}, privalytics.Errorf(privalytics.EINVALID, "say what the customer decided: --granted=true (given) or --granted=false (withdrawn)")
		}
		c, err := connect()
		if err != nil {
			return nil, Table{}, err
		}
		res, err := c.RecordConsents(cmd.Context(), []wire.ConsentRecord{{CustomerID: customer, Purpose: purpose, Granted: wire.Bool(granted), Source: source}})
		if err != nil {
			return nil, Table{}, err
		}
		return res, fields("recorded", strconv.Itoa(res.Recorded), "consent_version", strconv.FormatInt(res.Version, 10)), nil
	})
	record.Flags().StringVar(&customer, "customer", "", "the customer's ID as the business knows it")
	record.Flags().StringVar(&purpose, "purpose", "", "one of the tenant's purposes, e.g. analytics")
	record.Flags().BoolVar(&granted, "granted", false, "true: consent given; false: withdrawn")
	record.Flags().StringVar(&source, "source", "cli", "where the decision was collected")

	status := sdkCommand(&cobra.Command{Use: "status CUSTOMER_ID", Short: "Print a customer's standing per purpose and its history (admin key)", Args: cobra.ExactArgs(1)},
		func(cmd *cobra.Command, args []string, _ *Output, connect func() (*client.Client, error)) (any, Table, error) {
			c, err := connect()
			if err != nil {
				return nil, Table{}, err
			}
			st, err := c.ConsentStatus(cmd.Context(), args[0])
			if err != nil {
				return nil, Table{}, err
			}
			t := Table{Header: []string{"purpose", "policy", "granted"}}
			for _, p := range sortedKeys(st.Purposes) {
				t.Rows = append(t.Rows, []string{p, st.Purposes[p].Policy, strconv.FormatBool(st.Purposes[p].Granted)})
			}
			t.Note = fmt.Sprintf("%d decisions recorded.", len(st.History))
			return st, t, nil
		})
	cmd.AddCommand(record, status)
	return cmd
}

func subjectsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "subjects", Short: "Data subjects' rights: export, rectify and erase one customer's events (admin key)"}
	receipt := func(r *wire.ErasureReceipt, err error) (any, Table, error) {
		if err != nil {
			return nil, Table{}, err
		}
		return r, fields("id", r.ID, "status", r.Status, "subjects", strconv.Itoa(r.Subjects), "rows", strconv.Itoa(r.Rows),
			"requested", stamp(r.RequestedAt), "completed", stampPtr(r.CompletedAt)), nil
	}
	export := sdkCommand(&cobra.Command{Use: "export CUSTOMER_ID", Short: "Print every event held about one customer", Args: cobra.ExactArgs(1)},
		func(cmd *cobra.Command, args []string, out *Output, connect func() (*client.Client, error)) (any, Table, error) {
			c, err := connect()
			if err != nil {
				return nil, Table{}, err
			}
			if out.Format() == "csv" {
				// The server writes the CSV itself, in the schema's column order.
				raw, err := c.ExportSubjectCSV(cmd.Context(), args[0])
				if err == nil {
					_, err = cmd.OutOrStdout().Write(raw)
				}
				return nil, Table{}, err
			}
			ex, err := c.ExportSubject(cmd.Context(), args[0])
			if err != nil {
				return nil, Table{}, err
			}
			t := Table{Header: ex.Columns, Note: fmt.Sprintf("%d events about customer %s, exported %s.", ex.Rows, ex.CustomerID, stamp(ex.ExportedAt))}
			for _, e := range ex.Events {
				row := make([]string, len(ex.Columns))
				for i, col := range ex.Columns {
					if v, ok := e[col]; ok && v != nil {
						row[i] = fmt.Sprint(v)
					}
				}
				t.Rows = append(t.Rows, row)
			}
			return ex, t, nil
		})
	erase := sdkCommand(&cobra.Command{Use: "erase CUSTOMER_ID", Short: "Erase every event of one customer (hidden at once, removed from disk by compaction)", Args: cobra.ExactArgs(1)},
		func(cmd *cobra.Command, args []string, _ *Output, connect func() (*client.Client, error)) (any, Table, error) {
			c, err := connect()
			if err != nil {
				return nil, Table{}, err
			}
			return receipt(c.EraseSubject(cmd.Context(), args[0]))
		})
	var sets []string
	rectify := sdkCommand(&cobra.Command{Use: "rectify CUSTOMER_ID --set FIELD=VALUE…", Short: "Correct fields on every event of one customer", Args: cobra.ExactArgs(1)},
		func(cmd *cobra.Command, args []string, _ *Output, connect func() (*client.Client, error)) (any, Table, error) {
			if len(sets) == 0 {
				return nil, Table{}, privalytics.Errorf(privalytics.EINVALID, "say what to correct: --set field=value (a JSON value, or text)")
			}
			fieldsToSet := map[string]any{}
			for _, kv := range sets {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return nil, Table{}, privalytics.Errorf(privalytics.EINVALID, "--set %q must be field=value", kv)
				}
				// A JSON value (a number, true, null, "quoted") is sent as is;
				// anything else is text, so --set city=Lyon needs no quotes.
				var parsed any
				if json.Unmarshal([]byte(v), &parsed) == nil {
					fieldsToSet[k] = parsed
				} else {
					fieldsToSet[k] = v
				}
			}
			c, err := connect()
			if err != nil {
				return nil, Table{}, err
			}
			return receipt(c.RectifySubject(cmd.Context(), args[0], fieldsToSet))
		})
	rectify.Flags().StringArrayVar(&sets, "set", nil, "field=value to set (repeat for several fields)")
	erasure := sdkCommand(&cobra.Command{Use: "receipt ERASURE_ID", Short: "Print an erasure or rectification receipt (pending or complete)", Args: cobra.ExactArgs(1)},
		func(cmd *cobra.Command, args []string, _ *Output, connect func() (*client.Client, error)) (any, Table, error) {
			c, err := connect()
			if err != nil {
				return nil, Table{}, err
			}
			return receipt(c.Erasure(cmd.Context(), args[0]))
		})
	cmd.AddCommand(export, erase, rectify, erasure)
	return cmd
}

func retentionCommand() *cobra.Command {
	return sdkCommand(&cobra.Command{
		Use:   "retention DAYS",
		Short: "Set how many days events are kept (0: until erased); older events are purged (admin key)",
		Args:  cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string, _ *Output, connect func() (*client.Client, error)) (any, Table, error) {
		days, err := strconv.Atoi(args[0])
		if err != nil || days < 0 {
			return nil, Table{}, privalytics.Errorf(privalytics.EINVALID, "DAYS must be a whole number ≥ 0 (0 keeps events until erased), got %q", args[0])
		}
		c, err := connect()
		if err != nil {
			return nil, Table{}, err
		}
		t, err := c.SetRetention(cmd.Context(), days)
		if err != nil {
			return nil, Table{}, err
		}
		return t, tenantTable(t), nil
	})
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
