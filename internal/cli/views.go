package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
)

// viewsCommand is `privalytics views …`: saved questions released once per
// bucket, free to read, and their dashboards and share links.
func viewsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "views", Short: "Views: questions released once per day, week or month at a fixed privacy cost, free to read"}
	cmd.AddCommand(viewPreviewCommand(false), viewPreviewCommand(true), viewListCommand(), viewGetCommand(), viewDeleteCommand(),
		viewReleasesCommand(), viewRollupCommand(), dashboardsCommand())
	return cmd
}

// readSpec reads a ViewSpec from a file ("-": standard input).
func readSpec(cmd *cobra.Command, path string) (wire.ViewSpec, error) {
	var spec wire.ViewSpec
	if path == "" {
		return spec, privalytics.Errorf(privalytics.EINVALID, "pass --spec FILE (or - for standard input): a JSON view, e.g. {\"name\":\"sales\",\"cadence\":\"week\",\"epsilon\":0.1,\"start\":\"2026-01-05\",\"query\":{\"aggregates\":[{\"op\":\"count\"}]}}")
	}
	var r io.Reader = cmd.InOrStdin()
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return spec, err
		}
		defer f.Close()
		r = f
	}
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		return spec, privalytics.Errorf(privalytics.EINVALID, "--spec %s is not a JSON view: %v", path, err)
	}
	return spec, nil
}

func costTable(c *wire.ViewCost) Table {
	lasts := "renews every month"
	if c.PeriodsBudgetLasts != nil {
		lasts = strconv.Itoa(*c.PeriodsBudgetLasts) + " months"
	}
	t := fields("per_release_epsilon", Num(c.PerRelease.Epsilon), "releases_per_month", strconv.Itoa(c.ReleasesPerPeriod),
		"per_month_epsilon", Num(c.PerPeriod.Epsilon), "all_views_per_month_epsilon", Num(c.AllViewsPerPeriod.Epsilon),
		"budget_epsilon", Num(c.PeriodBudget.Epsilon), "budget_lasts", lasts, "fits", strconv.FormatBool(c.Fits))
	t.Note = c.Message
	return t
}

func viewPreviewCommand(create bool) *cobra.Command {
	var spec string
	use, short := "preview --spec FILE", "What a view would cost per month, with all your views, and whether it fits (spends nothing)"
	if create {
		use, short = "create --spec FILE", "Save a view; refused, with its cost, if all your views would overrun the budget"
	}
	cmd := sdkCommand(&cobra.Command{Use: use, Short: short, Args: cobra.NoArgs},
		func(cmd *cobra.Command, _ []string, _ *Output, connect func() (*client.Client, error)) (any, Table, error) {
			s, err := readSpec(cmd, spec)
			if err != nil {
				return nil, Table{}, err
			}
			c, err := connect()
			if err != nil {
				return nil, Table{}, err
			}
			if !create {
				cost, err := c.PreviewView(cmd.Context(), s)
				if err != nil {
					return nil, Table{}, err
				}
				return cost, costTable(cost), nil
			}
			v, err := c.CreateView(cmd.Context(), s)
			if err != nil {
				return nil, Table{}, err
			}
			t := costTable(v.Cost)
			t.Rows = append([][]string{{"id", v.ID}, {"name", v.Name}, {"cadence", v.Cadence}, {"start", v.Start}}, t.Rows...)
			return v, t, nil
		})
	cmd.Flags().StringVar(&spec, "spec", "", "the view as JSON: a file, or - for standard input")
	return cmd
}

func viewListCommand() *cobra.Command {
	return sdkCommand(&cobra.Command{Use: "list", Short: "List your views with what each costs per month", Args: cobra.NoArgs},
		func(cmd *cobra.Command, _ []string, _ *Output, connect func() (*client.Client, error)) (any, Table, error) {
			c, err := connect()
			if err != nil {
				return nil, Table{}, err
			}
			vs, err := c.Views(cmd.Context())
			if err != nil {
				return nil, Table{}, err
			}
			t := Table{Header: []string{"id", "name", "cadence", "epsilon_per_release", "so_far", "start", "epsilon_per_month"}}
			for _, v := range vs {
				per := ""
				if v.Cost != nil {
					per = Num(v.Cost.PerPeriod.Epsilon)
				}
				t.Rows = append(t.Rows, []string{v.ID, v.Name, v.Cadence, Num(v.Epsilon), strconv.FormatBool(v.SoFar), v.Start, per})
			}
			return vs, t, nil
		})
}

func viewGetCommand() *cobra.Command {
	return sdkCommand(&cobra.Command{Use: "get VIEW_ID", Short: "Print a view and its cost", Args: cobra.ExactArgs(1)},
		func(cmd *cobra.Command, args []string, _ *Output, connect func() (*client.Client, error)) (any, Table, error) {
			c, err := connect()
			if err != nil {
				return nil, Table{}, err
			}
			v, err := c.View(cmd.Context(), args[0])
			if err != nil {
				return nil, Table{}, err
			}
			t := fields("id", v.ID, "name", v.Name, "cadence", v.Cadence, "epsilon_per_release", Num(v.Epsilon), "so_far", strconv.FormatBool(v.SoFar), "start", v.Start, "query", string(v.Query))
			if v.Cost != nil {
				ct := costTable(v.Cost)
				t.Rows, t.Note = append(t.Rows, ct.Rows...), ct.Note
			}
			return v, t, nil
		})
}

func viewDeleteCommand() *cobra.Command {
	return sdkCommand(&cobra.Command{Use: "delete VIEW_ID", Short: "Delete a view and its releases (what they spent stays spent)", Args: cobra.ExactArgs(1)},
		func(cmd *cobra.Command, args []string, _ *Output, connect func() (*client.Client, error)) (any, Table, error) {
			c, err := connect()
			if err != nil {
				return nil, Table{}, err
			}
			if err := c.DeleteView(cmd.Context(), args[0]); err != nil {
				return nil, Table{}, err
			}
			return map[string]string{"deleted": args[0]}, fields("deleted", args[0]), nil
		})
}

func viewReleasesCommand() *cobra.Command {
	var from, to string
	cmd := sdkCommand(&cobra.Command{Use: "releases VIEW_ID [--from DAY] [--to DAY]", Short: "Print a view's releases, one row per bucket, group and aggregate (free)", Args: cobra.ExactArgs(1)},
		func(cmd *cobra.Command, args []string, _ *Output, connect func() (*client.Client, error)) (any, Table, error) {
			c, err := connect()
			if err != nil {
				return nil, Table{}, err
			}
			rels, err := c.ViewReleases(cmd.Context(), args[0], from, to)
			if err != nil {
				return nil, Table{}, err
			}
			t := Table{Header: []string{"bucket", "state", "group", "aggregate", "value", "lower", "upper"}}
			for _, r := range rels.Releases {
				if r.Result == nil {
					t.Rows = append(t.Rows, []string{r.Bucket, r.State, "", "", "failed", "", fmt.Sprint(r.Parameters["error"])})
					continue
				}
				for _, row := range r.Result.Rows {
					for j, cell := range row.Cells {
						name := ""
						if j < len(r.Result.Aggregates) {
							name = r.Result.Aggregates[j].Name
						}
						t.Rows = append(t.Rows, []string{r.Bucket, r.State, strings.Join(row.Key, " "), name, Num(cell.Value), Num(cell.Lower), Num(cell.Upper)})
					}
				}
			}
			return rels, t, nil
		})
	cmd.Flags().StringVar(&from, "from", "", "first bucket's day, YYYY-MM-DD")
	cmd.Flags().StringVar(&to, "to", "", "last bucket's day, YYYY-MM-DD (inclusive)")
	return cmd
}

func viewRollupCommand() *cobra.Command {
	var by string
	cmd := sdkCommand(&cobra.Command{Use: "rollup VIEW_ID [--by quarter|year|total]", Short: "Sum a view's closed releases by quarter, year or in total, consistently (free)", Args: cobra.ExactArgs(1)},
		func(cmd *cobra.Command, args []string, _ *Output, connect func() (*client.Client, error)) (any, Table, error) {
			c, err := connect()
			if err != nil {
				return nil, Table{}, err
			}
			ru, err := c.ViewRollup(cmd.Context(), args[0], by)
			if err != nil {
				return nil, Table{}, err
			}
			t := Table{Header: []string{"bucket", "group", "aggregate", "value", "lower", "upper", "buckets", "complete"}}
			for _, r := range ru.Rows {
				var g []string
				for k, v := range r.Group {
					g = append(g, k+"="+v)
				}
				sort.Strings(g)
				group := strings.Join(g, " ")
				if group == "" {
					group = "(all)"
				}
				var names []string
				for n := range r.Values {
					names = append(names, n)
				}
				sort.Strings(names)
				for _, n := range names {
					t.Rows = append(t.Rows, []string{r.Bucket, group, n, Num(r.Values[n]), Num(r.Intervals[n][0]), Num(r.Intervals[n][1]), strconv.Itoa(r.Buckets), strconv.FormatBool(r.Complete)})
				}
			}
			return ru, t, nil
		})
	cmd.Flags().StringVar(&by, "by", "quarter", "quarter, year or total")
	return cmd
}

func dashboardsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "dashboards", Short: "Saved dashboards of views, and their read-only share links"}
	var name string
	create := sdkCommand(&cobra.Command{Use: "create --name NAME VIEW_ID...", Short: "Save a dashboard of views", Args: cobra.MinimumNArgs(1)},
		func(cmd *cobra.Command, args []string, _ *Output, connect func() (*client.Client, error)) (any, Table, error) {
			c, err := connect()
			if err != nil {
				return nil, Table{}, err
			}
			d, err := c.CreateDashboard(cmd.Context(), wire.CreateDashboard{Name: name, ViewIDs: args})
			if err != nil {
				return nil, Table{}, err
			}
			return d, fields("id", d.ID, "name", d.Name, "views", strings.Join(d.ViewIDs, " ")), nil
		})
	create.Flags().StringVar(&name, "name", "", "the dashboard's name")
	list := sdkCommand(&cobra.Command{Use: "list", Short: "List your dashboards", Args: cobra.NoArgs},
		func(cmd *cobra.Command, _ []string, _ *Output, connect func() (*client.Client, error)) (any, Table, error) {
			c, err := connect()
			if err != nil {
				return nil, Table{}, err
			}
			ds, err := c.Dashboards(cmd.Context())
			if err != nil {
				return nil, Table{}, err
			}
			t := Table{Header: []string{"id", "name", "views", "created"}}
			for _, d := range ds {
				t.Rows = append(t.Rows, []string{d.ID, d.Name, strings.Join(d.ViewIDs, " "), stamp(d.CreatedAt)})
			}
			return ds, t, nil
		})
	del := sdkCommand(&cobra.Command{Use: "delete DASHBOARD_ID", Short: "Delete a dashboard and revoke its share links", Args: cobra.ExactArgs(1)},
		func(cmd *cobra.Command, args []string, _ *Output, connect func() (*client.Client, error)) (any, Table, error) {
			c, err := connect()
			if err != nil {
				return nil, Table{}, err
			}
			if err := c.DeleteDashboard(cmd.Context(), args[0]); err != nil {
				return nil, Table{}, err
			}
			return map[string]string{"deleted": args[0]}, fields("deleted", args[0]), nil
		})
	share := sdkCommand(&cobra.Command{Use: "share DASHBOARD_ID", Short: "Create a share link: a token that reads this dashboard and nothing else (shown once)", Args: cobra.ExactArgs(1)},
		func(cmd *cobra.Command, args []string, _ *Output, connect func() (*client.Client, error)) (any, Table, error) {
			c, err := connect()
			if err != nil {
				return nil, Table{}, err
			}
			l, err := c.ShareDashboard(cmd.Context(), args[0])
			if err != nil {
				return nil, Table{}, err
			}
			return l, fields("id", l.ID, "dashboard_id", l.DashboardID, "token", l.Token, "url", l.URL), nil
		})
	unshare := sdkCommand(&cobra.Command{Use: "unshare DASHBOARD_ID SHARE_ID", Short: "Revoke a share link", Args: cobra.ExactArgs(2)},
		func(cmd *cobra.Command, args []string, _ *Output, connect func() (*client.Client, error)) (any, Table, error) {
			c, err := connect()
			if err != nil {
				return nil, Table{}, err
			}
			if err := c.RevokeShare(cmd.Context(), args[0], args[1]); err != nil {
				return nil, Table{}, err
			}
			return map[string]string{"revoked": args[1]}, fields("revoked", args[1]), nil
		})
	cmd.AddCommand(create, list, del, share, unshare)
	return cmd
}
