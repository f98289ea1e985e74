package api

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/notice"
)

// privacyNotice serves the tenant's plain-language privacy notice, generated
// from its configuration: ?format=json|markdown|html, or by the Accept header
// (text/markdown, text/html); JSON by default. Any key of the tenant may read
// it: it is meant to be published.
func (s *Server) privacyNotice(c *gin.Context) {
	st, err := s.tenantState(c.Request.Context(), callerOf(c).Key.TenantID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	format := c.Query("format")
	if format == "" {
		accept := c.GetHeader("Accept")
		switch {
		case strings.Contains(accept, "text/markdown"):
			format = "markdown"
		case strings.Contains(accept, "text/html"):
			format = "html"
		default:
			format = "json"
		}
	}
	n := notice.For(st.tenant, "")
	switch format {
	case "json":
		c.JSON(http.StatusOK, wireNotice(*n))
	case "markdown", "md":
		c.Data(http.StatusOK, "text/markdown; charset=utf-8", []byte(n.Markdown()))
	case "html":
		c.Data(http.StatusOK, "text/html; charset=utf-8", []byte(n.HTML()))
	default:
		s.writeError(c, privalytics.Errorf(privalytics.EINVALID, "format must be json, markdown or html, got %q", format))
	}
}
