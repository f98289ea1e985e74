package cli

import (
	"strconv"

	"github.com/spf13/cobra"
)

// AuditListCommand is `audit list`: the tenant's audit entries through the
// API, newest first.
func AuditListCommand() *cobra.Command {
	var (
		sf            ServerFlags
		offset, limit int
		out           Output
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "Print the tenant's audit entries, newest first (admin key; --output json for the hashes and details)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.Check(); err != nil {
				return err
			}
			c, err := sf.Client()
			if err != nil {
				return err
			}
			entries, err := c.Audit(cmd.Context(), offset, limit)
			if err != nil {
				return err
			}
			t := Table{Header: []string{"seq", "time", "actor", "action", "target", "outcome"}}
			for _, e := range entries {
				t.Rows = append(t.Rows, []string{strconv.FormatUint(e.Seq, 10), stamp(e.Time), e.Actor, e.Action, e.Target, e.Outcome})
			}
			return out.Print(cmd.OutOrStdout(), entries, t)
		},
	}
	sf.Bind(list)
	out.Bind(list)
	list.Flags().IntVar(&offset, "offset", 0, "entries to skip")
	list.Flags().IntVar(&limit, "limit", 50, "entries to print (at most 500)")
	return list
}
