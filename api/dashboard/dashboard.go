// Package dashboard holds the web dashboard the server shows marketers at
// /dashboard/: static files only, embedded in the binary. The page calls the
// public HTTP API with the API key its user types, or with the share token in
// a share link's fragment (/dashboard/#share=<token>&dashboard=<id>, read-only:
// that dashboard's views and nothing else); it has no access of its own.
//
// The source is in web/ (plain JavaScript, Chart.js bundled by esbuild). The
// built files in assets/ are committed, so building the Go binary never needs
// Node; after changing web/, rebuild them with
//
//	go generate ./api/dashboard
package dashboard

import (
	"embed"
	"io/fs"
)

//go:generate npm --prefix ../../web ci --no-audit --no-fund
//go:generate npm --prefix ../../web run build

//go:embed assets
var assets embed.FS

// Files returns the dashboard's files, index.html at the root.
func Files() fs.FS {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the directory is embedded at build time; only a broken build gets here
	}
	return sub
}
