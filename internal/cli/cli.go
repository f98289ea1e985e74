// Package cli is the terminal client of Privalytics: the commands a business
// runs against a server (query, explain, tenant, keys, budget, consent,
// subjects, retention, audit list, version), each a thin call of the Go SDK
// (api/client) printed through one --output printer. It lives apart from
// cmd/privalytics so the binary's package holds only flags, config and wiring
// of the server side, and so these commands need nothing of the server.
package cli

import "github.com/spf13/cobra"

// Commands are the top-level client commands, ready to add to the root.
// audit list is not among them: it joins cmd/privalytics's audit command,
// whose verify reads the data directory (AuditListCommand).
func Commands() []*cobra.Command {
	return []*cobra.Command{queryCommand(), tenantCommand(), keysCommand(), explainCommand(),
		budgetCommand(), consentCommand(), subjectsCommand(), retentionCommand(), viewsCommand(), versionCommand()}
}
