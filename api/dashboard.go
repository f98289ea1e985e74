package api

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/privalytics/privalytics/api/dashboard"
)

// dashboardCSP keeps the dashboard to its own files and the API of its own
// origin: no inline script, no third-party hosts, no framing.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// serveDashboard serves the embedded dashboard under /dashboard/. Its files are
// public (they hold no data); everything it shows comes from the API, with the key
// the user signs in with.
func (s *Server) serveDashboard() gin.HandlerFunc {
	files := http.FileServerFS(dashboard.Files())
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("Content-Security-Policy", dashboardCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache") // small files; always revalidate so an upgrade shows at once
		r := c.Request.Clone(c.Request.Context())
		r.URL.Path = "/" + strings.TrimPrefix(c.Param("filepath"), "/")
		r.URL.RawPath = ""
		files.ServeHTTP(c.Writer, r)
	}
}
