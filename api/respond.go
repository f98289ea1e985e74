package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// reply is what a handler answers with when it succeeds: a status and a body
// (nil for 204).
type reply struct {
	status int
	body   any
}

func ok(body any) reply       { return reply{http.StatusOK, body} }
func created(body any) reply  { return reply{http.StatusCreated, body} }
func accepted(body any) reply { return reply{http.StatusAccepted, body} }
func noContent() reply        { return reply{status: http.StatusNoContent} }

// apiFunc is the shape of a handler: decode the request, call a service, and
// return either the reply or an error. It never writes the response itself.
type apiFunc func(c *gin.Context) (reply, error)

// handle is the one place that writes a handler's response: an error through
// writeError (the code → status table), a success as JSON with its status.
func (s *Server) handle(f apiFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		r, err := f(c)
		switch {
		case err != nil:
			s.writeError(c, err)
		case r.status == http.StatusNoContent:
			c.Status(http.StatusNoContent)
		default:
			if r.status == 0 {
				r.status = http.StatusOK
			}
			c.JSON(r.status, r.body)
		}
	}
}
