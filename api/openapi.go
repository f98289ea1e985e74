package api

import (
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// openAPISpec is the API contract, served at /openapi.yaml. TestOpenAPIMatchesRoutes
// fails when a route is added or removed without the spec.
//
//go:embed openapi.yaml
var openAPISpec []byte

func (s *Server) openAPI(c *gin.Context) {
	c.Data(http.StatusOK, "application/yaml", openAPISpec)
}
